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

/** A new W3C `traceparent` (version 00, sampled); ids are never all zeros (invalid per the spec). */
export function newTraceparent(): string {
  let traceId = randomHex(16);
  while (traceId === "00000000000000000000000000000000") traceId = randomHex(16);
  let spanId = randomHex(8);
  while (spanId === "0000000000000000") spanId = randomHex(8);
  return `00-${traceId}-${spanId}-01`;
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
