// Tensors and Arrow tables between TypeScript and real Python workers: shared memory when the
// pool can map it, the copy path when it cannot (zeroCopy "off" is the same path a pool without
// the native library takes), and the same results on both. scripts/test_all.sh runs this file
// again over gRPC, so both transports carry the same values.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import process from "node:process";
import { type Table, tableFromArrays } from "apache-arrow";
import {
  isSharedTable,
  openNativeLibrary,
  Pool,
  PythonError,
  RegionAccessError,
  releaseTable,
  SharedTensor,
  Tensor,
  type TensorDtype,
  WorkerCrashedError,
} from "../mod.ts";
import { decodeValue, encodeValue } from "../src/codec/msgpack.ts";
import { encodeJson } from "../src/codec/json.ts";
import { CallTransfer } from "../src/tensor/_wire.ts";
import { newRegionSecret } from "../src/tensor/_token.ts";
import { testPoolOptions, waitFor } from "./_helpers.ts";

const TENSORS = "snakepit_bridge.examples.tensors:TensorAdapter";
const THRESHOLD = 4096;
const regionsOf = (instance: string) => readdirSync("/dev/shm").filter((name) => name.startsWith(`snakepit-${instance}-`));

describe("Tensor and SharedTensor", () => {
  test("a SharedTensor is a typed-array view of a region; release detaches it", async () => {
    const library = await openNativeLibrary();
    try {
      const tensor = SharedTensor.allocate(library, [2, 3], "float32", { instance: "zctest" });
      assert.equal(tensor.shared, true);
      assert.deepEqual([tensor.dtype, tensor.shape, tensor.strides, tensor.byteLength], ["float32", [2, 3], [3, 1], 24]);
      assert.ok(tensor.data instanceof Float32Array);
      tensor.data.set([1, 2, 3, 4, 5, 6]);
      const view = tensor.data;
      assert.equal(regionsOf("zctest").length, 1);
      tensor.release();
      tensor.release();
      assert.equal(tensor.released, true);
      assert.throws(() => tensor.data, { name: "TypeError", message: /was released/ });
      assert.equal(view.length, 0, "an old view is detached, it never reads freed memory");
      assert.equal(view[0], undefined);
      assert.deepEqual(regionsOf("zctest"), []);

      const copy = SharedTensor.fromArray(library, new Int16Array([7, 8, 9, 10]), { shape: [2, 2], instance: "zctest" });
      assert.deepEqual([copy.dtype, [...copy.data]], ["int16", [7, 8, 9, 10]]);
      const half = SharedTensor.fromArray(library, new Uint16Array([0x3c00]), { dtype: "float16", instance: "zctest" });
      assert.deepEqual([half.dtype, half.data[0]], ["float16", 0x3c00]);
      {
        using scoped = SharedTensor.allocate(library, [0], "bool", { instance: "zctest" });
        assert.equal(scoped.size, 0);
      }
      copy.release();
      half.release();
      assert.deepEqual(regionsOf("zctest"), []);
    } finally {
      library.close();
    }
  });

  test("bad shapes, dtypes and arrays are TypeErrors and RangeErrors naming the value", async () => {
    const library = await openNativeLibrary();
    try {
      assert.throws(() => SharedTensor.allocate(library, [2, -1], "float32"), { name: "RangeError", message: /shape\[1\] must be an integer >= 0, received -1/ });
      assert.throws(() => SharedTensor.allocate(library, [2], "complex64" as TensorDtype), { name: "TypeError", message: /dtype must be one of .*received "complex64"/ });
      assert.throws(() => SharedTensor.allocate(library, "3" as unknown as number[], "int8"), { name: "TypeError", message: /shape must be an array/ });
      assert.throws(() => SharedTensor.allocate(library, [1, 1, 1, 1, 1, 1, 1, 1, 1], "int8"), { name: "RangeError", message: /9 dimensions/ });
      assert.throws(() => Tensor.from(new Float32Array(6), { shape: [4, 2] }), { name: "RangeError", message: /has 8 elements but the array holds 6/ });
      assert.throws(() => Tensor.from(new Uint8Array(3), { dtype: "int16" }), { name: "RangeError", message: /cannot hold int16/ });
      assert.throws(() => Tensor.from(new DataView(new ArrayBuffer(4))), { name: "TypeError", message: /must be a typed array/ });
      assert.deepEqual(regionsOf("snakepit").filter((name) => name.includes("zctest")), []);
    } finally {
      library.close();
    }
  });
});

describe("values refused on the host", () => {
  test("a forged, replayed, stale or out-of-bounds result descriptor is a RegionAccessError and leaks nothing", async () => {
    const library = await openNativeLibrary();
    const plane = { library, secret: newRegionSecret(), thresholdBytes: 0, zeroCopy: true, instance: "zctest", chunkedCopyThresholdBytes: 2 ** 26 };
    try {
      using tensor = SharedTensor.fromArray(library, new Float64Array([1, 2, 3]), { instance: "zctest" });
      const sent = new CallTransfer(plane, "req-1");
      // The host's own encoding is role "arg": a host expecting a result refuses it (wrong role).
      const payload = encodeValue({ t: tensor }, "args", sent);
      assert.throws(() => decodeValue(payload, new CallTransfer(plane, "req-1")), (error: unknown) => error instanceof RegionAccessError && error.reason === "token_invalid");
      // Another pool's secret (a forged token).
      const other = { ...plane, secret: newRegionSecret() };
      assert.throws(() => decodeValue(payload, new CallTransfer(other, "req-1")), { name: "RegionAccessError", message: /token was not issued for this call/ });
      // Without a pool in scope, a shared value cannot be mapped at all.
      assert.throws(() => decodeValue(payload), (error: unknown) => error instanceof RegionAccessError && error.reason === "zero_copy_disabled");
      sent.release();
      assert.equal(regionsOf("zctest").length, 1, "only the test's own tensor remains");
    } finally {
      library.close();
    }
    assert.deepEqual(regionsOf("zctest"), []);
  });

  test("JSON pools refuse tensors with advice; a released tensor cannot be sent", () => {
    const tensor = Tensor.from(new Float32Array(2));
    assert.throws(() => encodeJson({ t: tensor }, "args"), { name: "SerializationError", message: /args\.t .*use the msgpack encoding/ });
    tensor.release();
    assert.throws(() => encodeValue({ t: tensor }, "args"), { name: "SerializationError", message: /args\.t: the tensor was released/ });
  });
});

for (const zeroCopy of ["auto", "off"] as const) {
  describe(`pool.call with tensors (zeroCopy ${zeroCopy})`, () => {
    let pool: Pool;
    const instance = `zc${zeroCopy}`;
    const shared = zeroCopy === "auto";
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }) => void warnings.push(warning.code ?? "");
    before(async () => {
      process.on("warning", onWarning);
      pool = await Pool.start(testPoolOptions({ adapter: TENSORS, instance, zeroCopy, zeroCopyThresholdBytes: THRESHOLD }));
    });
    after(async () => {
      process.off("warning", onWarning);
      await pool.close();
      assert.deepEqual(regionsOf(instance), [], "no region of this pool is left in /dev/shm");
    });

    test("the pool says whether it shares, and why not", () => {
      assert.equal(pool.zeroCopy, shared);
      assert.equal(pool.zeroCopyReason, shared ? undefined : 'zeroCopy is "off"');
      assert.equal(warnings.includes("SNAKEPIT_ZERO_COPY_UNAVAILABLE"), false, "turning it off is not worth a warning");
    });

    test("bytes written in TypeScript are read unchanged by numpy, for every dtype", async () => {
      const cases: Array<[TensorDtype, ArrayBufferView, number]> = [
        ["float32", new Float32Array([1.5, -2, 3]), 2.5],
        ["float64", new Float64Array([1e300, -1e300, 0.25]), 0.25],
        ["int8", new Int8Array([-128, 127, 1]), 0],
        ["int16", new Int16Array([-1, 2, 3]), 4],
        ["int32", new Int32Array([-7, 8, 9]), 10],
        ["int64", new BigInt64Array([-(2n ** 40n), 2n ** 40n, 5n]), 5],
        ["uint8", new Uint8Array([0, 255, 1]), 256],
        ["uint16", new Uint16Array([65535, 1, 0]), 65536],
        ["uint32", new Uint32Array([4e9, 1, 0]), 4e9 + 1],
        ["uint64", new BigUint64Array([2n ** 50n, 1n, 0n]), 2 ** 50 + 1],
        ["bool", new Uint8Array([1, 0, 1]), 2],
        ["float16", new Uint16Array([0x3c00, 0x4000, 0xc000]), 1],
      ];
      for (const [dtype, data, sum] of cases) {
        using tensor = pool.tensorFrom(data, { dtype, shape: [1, 3] });
        assert.equal(tensor.shared, shared);
        const seen = await pool.call<Record<string, unknown>>("inspect", { x: tensor });
        assert.deepEqual(seen, { dtype, shape: [1, 3], writeable: true, shared, sum }, dtype);
      }
    });

    test("plain typed arrays at the threshold go through shared memory, below it inline", async () => {
      const moved: unknown[] = [];
      const off = pool.on("call:end", (event) => moved.push(event.data));
      const small = await pool.call<Record<string, unknown>>("inspect", { x: new Float32Array(THRESHOLD / 4 - 1).fill(1) });
      const large = await pool.call<Record<string, unknown>>("inspect", { x: new Float32Array(THRESHOLD / 4).fill(1) });
      off();
      assert.deepEqual([small.shared, small.sum, large.shared, large.sum], [false, THRESHOLD / 4 - 1, shared, THRESHOLD / 4]);
      assert.deepEqual(moved[0], { path: "inline", sharedBytes: 0, inlineBytes: THRESHOLD - 4, regions: 0, chunkedBytes: 0 });
      assert.deepEqual(
        moved[1],
        shared
          ? { path: "shared", sharedBytes: THRESHOLD, inlineBytes: 0, regions: 1, chunkedBytes: 0 }
          : { path: "copied", sharedBytes: 0, inlineBytes: THRESHOLD, regions: 0, chunkedBytes: 0 },
      );
    });

    test("results: small arrays inline, large ones shared (or copied and marked)", async () => {
      const small = await pool.call<Tensor>("arange", { n: 10, dtype: "int32" });
      assert.ok(small instanceof Tensor);
      assert.deepEqual([small.shared, small.isCopied, [...small.data]], [false, false, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
      const n = 100_000;
      const large = await pool.call<Tensor>("arange", { n, dtype: "float64" });
      assert.deepEqual([large.shared, large.isCopied, large.dtype, large.shape], [shared, !shared, "float64", [n]]);
      assert.equal(large.data[n - 1], n - 1);
      assert.equal((large.data as Float64Array).reduce((a, b) => a + b, 0), (n * (n - 1)) / 2);
      large.release();
      const direct = await pool.call<Tensor>("alloc_arange", { n, dtype: "int64" });
      assert.deepEqual([direct.shared, direct.data[n - 1]], [shared, BigInt(n - 1)]);
      direct.release();
      // A call without arguments opens no regions for them; its result still travels shared.
      const ramp = await pool.call<Tensor>("ramp");
      assert.deepEqual([ramp.shared, ramp.isCopied, ramp.shape, ramp.data[n - 1]], [shared, !shared, [n], n - 1]);
      ramp.release();
    });

    test("a round trip returns the same bytes, and the handed-over regions are released", async () => {
      const data = new Float32Array(1 << 16).map((_, index) => Math.sin(index));
      const back = await pool.call<Tensor>("echo", { x: data });
      assert.deepEqual([back.dtype, back.shape, back.shared], ["float32", [1 << 16], shared]);
      assert.deepEqual(back.data, data);
      back.release();
      // The worker lets go of a result region once the host adopted it; nothing else is left.
      await waitFor(() => regionsOf(instance).length === 0, 2_000, "the worker releases handed-over regions");
    });

    test("in-place writes by Python are visible in TypeScript (shared memory only)", async (t) => {
      if (!shared) return t.skip("the copy path sends a copy; writes stay in the worker");
      using tensor = pool.tensor([4, 4], "float64");
      await pool.call("fill", { x: tensor, value: 2.5 });
      assert.deepEqual([...tensor.data], new Array(16).fill(2.5));
    });

    test("read-only tensors arrive as non-writeable arrays; writing raises in Python", async () => {
      using tensor = pool.tensorFrom(new Float32Array(THRESHOLD));
      const seen = await pool.call<Record<string, unknown>>("inspect", { x: tensor.asReadOnly() });
      assert.equal(seen.writeable, false);
      await assert.rejects(pool.call("fill", { x: tensor.asReadOnly(), value: 1 }), (error: unknown) =>
        error instanceof PythonError && /read-only/.test(error.message));
      assert.equal(tensor.data[0], 0);
    });

    test("Arrow tables round-trip with the same schema and values; pandas frames come back as Arrow", async () => {
      const rows = 50_000;
      const table = tableFromArrays({
        id: Int32Array.from({ length: rows }, (_, i) => i),
        score: Float64Array.from({ length: rows }, (_, i) => i / 4),
      });
      const summary = await pool.call<Record<string, unknown>>("table_summary", { table });
      assert.deepEqual(summary, { rows, columns: ["id", "score"], sums: { id: (rows * (rows - 1)) / 2, score: (rows * (rows - 1)) / 8 } });
      const back = await pool.call<Table>("echo", { x: table });
      assert.deepEqual(back.schema.fields.map((field) => [field.name, String(field.type)]), [["id", "Int32"], ["score", "Float64"]]);
      assert.equal(back.numRows, rows);
      assert.equal(back.getChild("score")!.get(rows - 1), (rows - 1) / 4);
      assert.equal(isSharedTable(back), shared);
      assert.equal(releaseTable(back), shared);
      const frame = await pool.call<Table>("frame", { n: 3 });
      assert.deepEqual(frame.toArray().map((row) => row.toJSON()), [
        { id: 0n, value: 0 },
        { id: 1n, value: 0.5 },
        { id: 2n, value: 1 },
      ]);
      releaseTable(frame);
    });

    test("torch.from_dlpack views the same argument (when torch is installed)", async (t) => {
      const probe = await pool.call<number>("torch_sum", { x: new Float32Array([1, 2, 3]) }).catch((error) => error);
      if (probe instanceof PythonError && probe.pythonType === "ModuleNotFoundError") return t.skip("torch is not installed");
      assert.equal(probe, 6);
    });
  });
}

describe("shared-memory faults", () => {
  let pool: Pool;
  before(async () => {
    pool = await Pool.start(testPoolOptions({ adapter: TENSORS, instance: "zcfaults", zeroCopyThresholdBytes: THRESHOLD }));
  });
  after(async () => {
    await pool.close();
    assert.deepEqual(regionsOf("zcfaults"), []);
  });

  test("a stale descriptor (the region moved to a new generation) is refused by the worker", async () => {
    using tensor = pool.tensor([8], "float32") as SharedTensor;
    tensor.region.bumpGeneration();
    await assert.rejects(pool.call("inspect", { x: tensor }), (error: unknown) =>
      error instanceof RegionAccessError && error.reason === "region_unavailable" && error.regionName === tensor.regionName);
    assert.equal(await pool.call("first", { x: new Float32Array([3]) }), 3, "the worker is still serving");
  });

  test("a worker SIGKILLed while it holds a result region leaks nothing", async () => {
    await assert.rejects(pool.call("alloc_then_die", { n: 1 << 16 }), WorkerCrashedError);
    await waitFor(() => regionsOf("zcfaults").length === 0, 2_000, "the dead worker's regions are reaped");
  });
});
