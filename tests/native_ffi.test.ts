/**
 * Specification of the native library's TypeScript binding (ffi/), under Bun and Deno alike.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  defaultNativeLibraryPath,
  NATIVE_ABI_VERSION,
  NativeLibraryError,
  NativeStatus,
  openNativeLibrary,
} from "../ffi/mod.ts";
import { NativeError, SnakepitError } from "../mod.ts";

const repositoryRoot = fileURLToPath(new URL("..", import.meta.url));
const python = join(repositoryRoot, ".venv", "bin", "python");
const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Bit-at-a-time CRC-32C from the definition (reflected polynomial 0x82F63B78). */
function crc32cReference(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit += 1) crc = (crc >>> 1) ^ (crc & 1 ? 0x82f63b78 : 0);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed >>> 0;
  for (let index = 0; index < length; index += 1) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    bytes[index] = state & 0xff;
  }
  return bytes;
}

const vectors: ReadonlyArray<readonly [string, Uint8Array, number]> = [
  ["the check string", encode("123456789"), 0xe3069283],
  ["empty input", new Uint8Array(0), 0],
  ["32 zero bytes", new Uint8Array(32), 0x8a9136aa],
  ["32 0xFF bytes", new Uint8Array(32).fill(0xff), 0x62a8ab43],
  ["32 ascending bytes", Uint8Array.from({ length: 32 }, (_, index) => index), 0x46dd794e],
  ["the quick brown fox", encode("The quick brown fox jumps over the lazy dog"), 0x22620404],
];

test("openNativeLibrary opens the default library and reports ABI version 1", async () => {
  const library = await openNativeLibrary();
  try {
    assert.equal(library.path, defaultNativeLibraryPath());
    assert.equal(library.abiVersion(), 1);
    assert.equal(library.abiVersion(), NATIVE_ABI_VERSION);
  } finally {
    library.close();
  }
});

test("libraryVersion is 0.1.0", async () => {
  const library = await openNativeLibrary();
  try {
    assert.equal(library.libraryVersion(), "0.1.0");
  } finally {
    library.close();
  }
});

test("crc32c matches the published vectors", async () => {
  const library = await openNativeLibrary();
  try {
    for (const [label, bytes, expected] of vectors) {
      assert.equal(library.crc32c(bytes), expected, label);
      assert.equal(crc32cReference(bytes), expected, `reference: ${label}`);
    }
  } finally {
    library.close();
  }
});

test("crc32c reads exactly the bytes of a subarray view", async () => {
  const library = await openNativeLibrary();
  try {
    const padded = encode("x123456789y");
    assert.equal(library.crc32c(padded.subarray(1, 10)), 0xe3069283);
    assert.equal(library.crc32c(padded.subarray(5, 5)), 0);
  } finally {
    library.close();
  }
});

test("crc32c of random data matches a reference implementation", async () => {
  const library = await openNativeLibrary();
  try {
    for (let round = 0; round < 50; round += 1) {
      const bytes = pseudoRandomBytes((round * 977) % 4099, round + 1);
      assert.equal(library.crc32c(bytes), crc32cReference(bytes), `round ${round}`);
    }
    const large = pseudoRandomBytes(1024 * 1024 + 3, 0x5eed);
    assert.equal(library.crc32c(large), crc32cReference(large));
  } finally {
    library.close();
  }
});

test("crc32c computed in TypeScript equals crc32c computed by Python", async () => {
  const library = await openNativeLibrary();
  try {
    const bytes = pseudoRandomBytes(64 * 1024 + 11, 0xc0ffee);
    const script = "import sys\nfrom snakepit_bridge import native\n" +
      "print(native.load().crc32c(sys.stdin.buffer.read()))";
    const output = execFileSync(python, ["-c", script], { input: bytes, encoding: "utf8" });
    assert.equal(Number(output.trim()), library.crc32c(bytes));
  } finally {
    library.close();
  }
});

test("crc32c rejects a value that is not a Uint8Array with TypeError", async () => {
  const library = await openNativeLibrary();
  try {
    const notBytes = "123456789" as unknown as Uint8Array;
    assert.throws(() => library.crc32c(notBytes), {
      name: "TypeError",
      message: "Cannot compute crc32c: bytes must be a Uint8Array, received string",
    });
  } finally {
    library.close();
  }
});

test("statusName names every status and marks unknown codes", async () => {
  const library = await openNativeLibrary();
  try {
    for (const [name, code] of Object.entries(NativeStatus)) {
      assert.equal(library.statusName(code), name);
    }
    assert.equal(library.statusName(7), "unknown(7)");
    assert.equal(library.statusName(-0x8000_0000), "unknown(-2147483648)");
  } finally {
    library.close();
  }
});

test("statusName rejects a value that is not a 32-bit integer with RangeError", async () => {
  const library = await openNativeLibrary();
  try {
    for (const status of [0.5, 2 ** 31, Number.NaN]) {
      assert.throws(() => library.statusName(status), {
        name: "RangeError",
        message: `Cannot name a native status: status must be a 32-bit integer, received ${status}`,
      });
    }
  } finally {
    library.close();
  }
});

test("a missing library rejects with NativeLibraryError naming the path and the fix", async () => {
  const missing = join(tmpdir(), "snakepit-missing", "libsnakepit.so");
  await assert.rejects(openNativeLibrary(missing), (error: unknown) => {
    assert.ok(error instanceof NativeLibraryError);
    assert.ok(error instanceof NativeError, "it is the taxonomy's NativeError");
    assert.ok(error instanceof SnakepitError);
    assert.equal(error.retryable, false);
    assert.equal(error.name, "NativeLibraryError");
    assert.equal(error.code, "native");
    assert.equal(error.op, "open");
    assert.equal(error.status, 0);
    assert.equal(error.statusName, "not_found");
    assert.equal(error.path, missing);
    assert.equal(
      error.message,
      `Cannot load the native library at ${missing}: file not found. ` +
        "Run `make setup` to build it, or set SNAKEPIT_NATIVE_LIB to its path.",
    );
    return true;
  });
});

test("openNativeLibrary rejects a file that is not a library with load_failed", async () => {
  const directory = mkdtempSync(join(tmpdir(), "snakepit-ffi-"));
  const notALibrary = join(directory, "libsnakepit.so");
  try {
    writeFileSync(notALibrary, "not an ELF file");
    await assert.rejects(openNativeLibrary(notALibrary), (error: unknown) => {
      assert.ok(error instanceof NativeLibraryError);
      assert.equal(error.statusName, "load_failed");
      assert.equal(error.path, notALibrary);
      assert.match(error.message, /^Cannot load the native library at .*libsnakepit\.so: /);
      assert.match(error.message, /Run `make setup` to build it/);
      assert.ok(error.cause !== undefined);
      return true;
    });
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("close is idempotent, and later calls throw a closed error", async () => {
  const library = await openNativeLibrary();
  library.close();
  library.close();
  for (const call of [() => library.abiVersion(), () => library.crc32c(encode("a"))]) {
    assert.throws(call, (error: unknown) => {
      assert.ok(error instanceof NativeLibraryError);
      assert.equal(error.statusName, "closed");
      assert.equal(error.path, library.path);
      assert.match(
        error.message,
        /^Cannot call (abiVersion|crc32c): the native library at .* is closed/,
      );
      return true;
    });
  }
});

test("Symbol.asyncDispose closes the library", async () => {
  const library = await openNativeLibrary();
  await library[Symbol.asyncDispose]();
  assert.throws(() => library.libraryVersion(), NativeLibraryError);
});

test("defaultNativeLibraryPath prefers SNAKEPIT_NATIVE_LIB, else the repository build", () => {
  const saved = process.env.SNAKEPIT_NATIVE_LIB;
  try {
    process.env.SNAKEPIT_NATIVE_LIB = "/opt/snakepit/libsnakepit.so";
    assert.equal(defaultNativeLibraryPath(), "/opt/snakepit/libsnakepit.so");
    delete process.env.SNAKEPIT_NATIVE_LIB;
    assert.equal(defaultNativeLibraryPath(), join(repositoryRoot, "zig-out/lib/libsnakepit.so"));
  } finally {
    if (saved === undefined) delete process.env.SNAKEPIT_NATIVE_LIB;
    else process.env.SNAKEPIT_NATIVE_LIB = saved;
  }
});
