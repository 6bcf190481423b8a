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

/** `bytes` random bytes (at most 4096) as lowercase hex, from a cryptographic source. */
export function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL_BYTES) {
    crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  let text = "";
  for (let index = poolOffset; index < poolOffset + bytes; index++) text += HEX[pool[index]!];
  poolOffset += bytes;
  return text;
}

const words = new Uint32Array(6);

/** A new W3C `traceparent` (version 00, sampled); ids are never all zeros (invalid per the spec). */
export function newTraceparent(): string {
  // Six random words: 16 bytes of trace id, 8 of span id. One getRandomValues per 682 ids (the
  // block pool below is shared), eight-digit hex pieces rather than 24 one-byte ones.
  if (poolOffset + 24 > POOL_BYTES) {
    crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  for (let index = 0; index < 6; index++) {
    const at = poolOffset + 4 * index;
    words[index] = (pool[at]! | (pool[at + 1]! << 8) | (pool[at + 2]! << 16) | (pool[at + 3]! << 24)) >>> 0;
  }
  poolOffset += 24;
  if ((words[0]! | words[1]! | words[2]! | words[3]!) === 0) words[3] = 1;
  if ((words[4]! | words[5]!) === 0) words[5] = 1;
  return `00-${hex8(words[0]!)}${hex8(words[1]!)}${hex8(words[2]!)}${hex8(words[3]!)}-${hex8(words[4]!)}${hex8(words[5]!)}-01`;
}

function hex8(word: number): string {
  return word.toString(16).padStart(8, "0");
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
