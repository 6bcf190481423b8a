/**
 * Identifiers and small environment helpers for the pool.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import process from "node:process";

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));
/** Random bytes drawn in blocks: one getRandomValues per 4 KiB instead of one per id. */
const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
let poolOffset = POOL_BYTES;

/** Takes `bytes` (at most 4096) fresh random bytes from the block; where they start in `pool`. */
function takeRandom(bytes: number): number {
  if (poolOffset + bytes > POOL_BYTES) {
    crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  const start = poolOffset;
  poolOffset += bytes;
  return start;
}

/** `bytes` random bytes (at most 4096) as lowercase hex, from a cryptographic source. */
export function randomHex(bytes: number): string {
  const start = takeRandom(bytes);
  let text = "";
  for (let index = start; index < start + bytes; index++) text += HEX[pool[index]!];
  return text;
}

/** "0" to "f" as character codes, and a traceparent's characters, written in place. */
const HEX_CODES = Array.from("0123456789abcdef", (digit) => digit.charCodeAt(0));
const traceparentCodes: number[] = Array.from("00-" + "0".repeat(32) + "-" + "0".repeat(16) + "-01", (character) => character.charCodeAt(0));

/** A new W3C `traceparent` (version 00, sampled); ids are never all zeros (invalid per the spec). */
export function newTraceparent(): string {
  // 24 random bytes (16 of trace id, 8 of span id) from the shared block (one getRandomValues per
  // 170 ids), written as hex digits into a code array that becomes one flat string: no per-piece
  // number formatting or concatenation (it was a tenth of a fast-lane call's host time).
  const start = takeRandom(24);
  let traceBits = 0;
  let spanBits = 0;
  for (let index = 0; index < 16; index++) traceBits |= pool[start + index]!;
  for (let index = 16; index < 24; index++) spanBits |= pool[start + index]!;
  // The last byte of an all-zero id becomes 1, as before.
  if (traceBits === 0) pool[start + 15] = 1;
  if (spanBits === 0) pool[start + 23] = 1;
  const codes = traceparentCodes;
  for (let index = 0; index < 16; index++) writeHexByte(codes, 3 + 2 * index, pool[start + index]!);
  for (let index = 0; index < 8; index++) writeHexByte(codes, 36 + 2 * index, pool[start + 16 + index]!);
  return String.fromCharCode.apply(null, codes);
}

const uuidCodes: number[] = Array.from("00000000-0000-4000-8000-000000000000", (character) => character.charCodeAt(0));
/** Where each of a UUID's 16 bytes goes in its text (two hex digits each). */
const UUID_BYTE_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/**
 * A random (version 4) UUID, as `crypto.randomUUID()` makes, from the shared block of random
 * bytes: one call's correlation id, without a native call per id.
 */
export function newCorrelationId(): string {
  const start = takeRandom(16);
  const codes = uuidCodes;
  for (let index = 0; index < 16; index++) {
    let byte = pool[start + index]!;
    if (index === 6) byte = (byte & 0x0f) | 0x40; // version 4
    else if (index === 8) byte = (byte & 0x3f) | 0x80; // variant 10xx (RFC 9562)
    writeHexByte(codes, UUID_BYTE_AT[index]!, byte);
  }
  return String.fromCharCode.apply(null, codes);
}

function writeHexByte(codes: number[], at: number, byte: number): void {
  codes[at] = HEX_CODES[byte >>> 4]!;
  codes[at + 1] = HEX_CODES[byte & 15]!;
}

/**
 * The environment that tells workers where the native library is: the explicit path, else
 * `$SNAKEPIT_NATIVE_LIB`, else the repository build (`zig-out/lib/libsnakepit.so`) when present.
 */
export function nativeLibraryEnv(explicitPath: string | undefined): Record<string, string> {
  const fromEnv = process.env.SNAKEPIT_NATIVE_LIB;
  const builtUrl = new URL("../../zig-out/lib/libsnakepit.so", import.meta.url);
  // Installed from a registry (an https: module URL) there is no local build to point at.
  const built = builtUrl.protocol === "file:" ? fileURLToPath(builtUrl) : "";
  const path = explicitPath ?? fromEnv ?? (built && existsSync(built) ? built : undefined);
  return path ? { SNAKEPIT_NATIVE_LIB: path } : {};
}
