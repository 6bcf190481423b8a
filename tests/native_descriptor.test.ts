/**
 * Tensor descriptors: TypeScript and Python write the same bytes, the library reads them back
 * identically and proves their bounds, and a bad descriptor is an error everywhere alike.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  decodeDescriptor,
  type DtypeName,
  DTYPES,
  encodeDescriptor,
  normalizeDescriptor,
  openNativeLibrary,
  Region,
  SharedMemoryError,
  type TensorDescriptor,
  validateDescriptor,
} from "../ffi/mod.ts";
import { pseudoRandomBytes, python, startPeer, uniqueInstance } from "./_native_helpers.ts";

const NAME = "/snakepit-desc-00112233445566778899aabbccddeeff";

const example = (overrides: Partial<TensorDescriptor> = {}): TensorDescriptor => ({
  dtype: "float32",
  shape: [3, 4],
  regionName: NAME,
  regionGeneration: 1,
  ...overrides,
});

/** Python's encoding of the same descriptors (snakepit_bridge.native_descriptor.encode). */
function pythonEncode(descriptors: TensorDescriptor[]): string[] {
  const script = "import sys, json\nfrom snakepit_bridge import native_descriptor as d\n" +
    "for s in json.load(sys.stdin):\n" +
    "    print(d.encode(d.TensorDescriptor(s['dtype'], s['shape'], s['regionName'], " +
    "s['regionGeneration'], strides=s.get('strides'), byte_offset=s.get('byteOffset', 0), " +
    "read_only=s.get('readOnly', False), is_copied=s.get('isCopied', False))).hex())";
  const output = execFileSync(python, ["-c", script], {
    input: JSON.stringify(descriptors),
    encoding: "utf8",
  });
  return output.trim().split("\n");
}

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");

test("every dtype round-trips, and TypeScript and Python write identical bytes the library keeps", async () => {
  const library = await openNativeLibrary();
  try {
    const descriptors: TensorDescriptor[] = Object.keys(DTYPES).map((dtype, index) =>
      example({
        dtype: dtype as DtypeName,
        shape: [2, index + 1, 3].slice(0, 1 + (index % 3)),
        byteOffset: 16 * index,
        readOnly: index % 2 === 0,
        isCopied: index % 3 === 0,
        regionGeneration: index + 1,
      })
    );
    descriptors.push(example({ shape: [4, 3], strides: [1, 4] }), example({ shape: [] }));
    const fromPython = pythonEncode(descriptors);
    descriptors.forEach((descriptor, index) => {
      const bytes = encodeDescriptor(descriptor);
      assert.equal(bytes.byteLength, 256);
      assert.equal(
        hex(bytes),
        fromPython[index],
        `Python writes the same bytes for ${descriptor.dtype}`,
      );
      assert.deepEqual(
        normalizeDescriptor(library, bytes),
        bytes,
        "the library reads what it would write",
      );
      const decoded = decodeDescriptor(bytes);
      assert.equal(decoded.dtype, descriptor.dtype);
      assert.deepEqual(decoded.shape, descriptor.shape);
      assert.deepEqual(decoded.strides, descriptor.strides);
      assert.equal(decoded.byteOffset, descriptor.byteOffset ?? 0);
      assert.equal(decoded.readOnly, descriptor.readOnly ?? false);
      assert.equal(decoded.isCopied, descriptor.isCopied ?? false);
      assert.equal(decoded.regionGeneration, descriptor.regionGeneration);
    });
  } finally {
    library.close();
  }
});

test("validation proves bounds, alignment and arithmetic, returning the bytes covered", async () => {
  const library = await openNativeLibrary();
  try {
    const bytes = (descriptor: TensorDescriptor) => encodeDescriptor(descriptor);
    assert.deepEqual(validateDescriptor(library, bytes(example()), 48), {
      firstByte: 0,
      endByte: 48,
    });
    assert.deepEqual(
      validateDescriptor(library, bytes(example({ strides: [-4, 1], byteOffset: 40 })), 56),
      { firstByte: 8, endByte: 56 },
    );
    const failures: Array<[TensorDescriptor, number, string]> = [
      [example(), 47, "descriptor_out_of_bounds"],
      [example({ byteOffset: 2 }), 1000, "descriptor_misaligned"],
      [example({ shape: [2 ** 40, 2 ** 40] }), 2 ** 50, "descriptor_overflow"],
      [example({ shape: [2], strides: [2 ** 52] }), 2 ** 50, "descriptor_out_of_bounds"],
      [example({ dtype: "complex128", byteOffset: 8 }), 1000, "ok"],
      [example({ dtype: "complex128", byteOffset: 4 }), 1000, "descriptor_misaligned"],
    ];
    for (const [descriptor, payload, expected] of failures) {
      const verdict = (() => {
        try {
          validateDescriptor(library, bytes(descriptor), payload);
          return "ok";
        } catch (error) {
          assert.ok(error instanceof SharedMemoryError);
          return error.statusName;
        }
      })();
      assert.equal(verdict, expected, JSON.stringify(descriptor));
    }
    assert.throws(() => validateDescriptor(library, new Uint8Array(10), 100), (error: unknown) => {
      assert.ok(error instanceof SharedMemoryError);
      assert.equal(error.statusName, "descriptor_malformed");
      assert.equal(
        error.message,
        "Invalid tensor descriptor: the descriptor's bytes are malformed [descriptor_malformed].",
      );
      return true;
    });
  } finally {
    library.close();
  }
});

/** The library's verdict on bytes: "ok" or the status name. */
function nativeVerdict(
  library: Awaited<ReturnType<typeof openNativeLibrary>>,
  bytes: Uint8Array,
): string {
  try {
    normalizeDescriptor(library, bytes);
    return "ok";
  } catch (error) {
    return (error as SharedMemoryError).statusName;
  }
}

test("on 3,000 damaged descriptors the TypeScript decoder and the library agree on every verdict", async () => {
  const library = await openNativeLibrary();
  try {
    const base = encodeDescriptor(example({ strides: [4, 1], byteOffset: 8 }));
    const noise = pseudoRandomBytes(3000 * 4, 0xd1ce);
    const counts: Record<string, number> = {};
    for (let round = 0; round < 3000; round += 1) {
      const bytes = base.slice();
      const flips = 1 + (noise[round * 4] % 3);
      for (let flip = 0; flip < flips; flip += 1) {
        const position = (noise[round * 4 + 1 + flip] * 7 + round) % 256;
        bytes[position] ^= 1 << (noise[round * 4 + 3] % 8);
      }
      const expected = nativeVerdict(library, bytes);
      let actual = "ok";
      try {
        decodeDescriptor(bytes);
      } catch (error) {
        actual = (error as SharedMemoryError).statusName;
      }
      // Values past 2^53 decode as descriptor_overflow in JavaScript only; the library accepts them.
      if (actual === "descriptor_overflow") assert.equal(expected, "ok");
      else assert.equal(actual, expected, `round ${round}: ${hex(bytes)}`);
      counts[expected] = (counts[expected] ?? 0) + 1;
    }
    assert.ok(
      (counts.ok ?? 0) > 100 && (counts.descriptor_malformed ?? 0) > 100,
      JSON.stringify(counts),
    );
  } finally {
    library.close();
  }
});

test("encoding refuses fields out of range with RangeError", () => {
  assert.throws(() => encodeDescriptor(example({ shape: Array(9).fill(1) })), RangeError);
  assert.throws(() => encodeDescriptor(example({ shape: [-1] })), RangeError);
  assert.throws(() => encodeDescriptor(example({ strides: [1] })), RangeError);
  assert.throws(() => encodeDescriptor(example({ regionName: "/tmp/x" })), RangeError);
  assert.throws(() => encodeDescriptor(example({ regionGeneration: 0 })), RangeError);
  assert.throws(() => encodeDescriptor(example({ dtype: "float8" as DtypeName })), RangeError);
});

test("a region checks descriptors against its name and generation, and Python builds the array", async () => {
  const library = await openNativeLibrary();
  const region = Region.create(library, { payloadBytes: 4096, instance: uniqueInstance("tensor") });
  try {
    region.view(Float32Array, 0, 12).set(Array.from({ length: 12 }, (_, index) => index));
    const transposed = encodeDescriptor({
      dtype: "float32",
      shape: [4, 3],
      strides: [1, 4],
      regionName: region.name,
      regionGeneration: 1,
      readOnly: true,
    });
    assert.deepEqual(region.checkDescriptor(transposed), { firstByte: 0, endByte: 48 });
    const elsewhere = encodeDescriptor(example());
    assert.throws(() => region.checkDescriptor(elsewhere), {
      statusName: "descriptor_region_mismatch",
    });
    const tooBig = encodeDescriptor({ ...decodeDescriptor(transposed), shape: [4, 400] });
    assert.throws(() => region.checkDescriptor(tooBig), { statusName: "descriptor_out_of_bounds" });
    const script =
      "import sys, json\nfrom snakepit_bridge import native, native_descriptor as d\n" +
      "from snakepit_bridge.native_region import Region\n" +
      "with Region.open(native.load(), sys.argv[1]) as r:\n" +
      "    a = d.to_numpy(r, bytes.fromhex(sys.argv[2]))\n" +
      "    print(json.dumps({'values': a.tolist(), 'writeable': a.flags.writeable}))\n" +
      "    del a";
    const output = execFileSync(python, ["-c", script, region.name, hex(transposed)], {
      encoding: "utf8",
    });
    assert.deepEqual(JSON.parse(output), {
      values: [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]],
      writeable: false,
    });
    region.bumpGeneration();
    assert.throws(() => region.checkDescriptor(transposed), { statusName: "generation_mismatch" });
    const peer = startPeer(["read", region.name, "4"]);
    assert.equal(await peer.nextLine(), "00000000");
    assert.equal((await peer.exited()).code, 0);
  } finally {
    region.close();
    library.close();
  }
});
