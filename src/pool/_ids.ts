/**
 * Identifiers and small environment helpers for the pool.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import process from "node:process";

/** `bytes` random bytes as lowercase hex. */
export function randomHex(bytes: number): string {
  const buffer = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buffer, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** A new W3C `traceparent` (version 00, sampled). */
export function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
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
