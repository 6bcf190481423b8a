/**
 * The error the native library's loader and bindings throw.
 *
 * It is the taxonomy's `NativeError` (code `"native"`) with the library's path.
 *
 * @module
 */
import { NativeError } from "../src/errors/pool_errors.ts";

/**
 * Status names for failures that happen before or instead of a native call. They never collide
 * with the library's own status names (`ok`, `invalid_argument`, ...).
 */
export type NativeLibraryFailure =
  | "not_found"
  | "load_failed"
  | "unsupported_runtime"
  | "abi_mismatch"
  | "closed";

/** The fields of a {@link NativeLibraryError}. */
export interface NativeLibraryErrorOptions {
  /** The operation that failed: `"open"`, or the method called (`"crc32c"`, ...). */
  op: string;
  /** The native status code, or 0 when no native call failed (see `statusName` then). */
  status: number;
  /** The native status name, or a {@link NativeLibraryFailure} when no native call failed. */
  statusName: string;
  /** The path of the shared library. */
  path: string;
  /** The underlying failure, if any (for example the runtime's `dlopen` error). */
  cause?: unknown;
  /** errno of a failed system call, when one failed. */
  errno?: number;
  /** What the caller can do about it. */
  suggestion?: string;
}

/**
 * A native library could not be loaded, did not match, was closed, or returned an error status.
 *
 * Decide on `statusName` (stable), never on the message.
 *
 * @example
 * ```ts
 * import { NativeLibraryError, openNativeLibrary } from "./mod.ts";
 * try {
 *   await openNativeLibrary("/nonexistent/libsnakepit.so");
 * } catch (error) {
 *   if (error instanceof NativeLibraryError) console.log(error.statusName); // "not_found"
 * }
 * ```
 */
export class NativeLibraryError extends NativeError {
  /** The path of the shared library. */
  readonly path: string;

  /**
   * @param message What failed and what to do about it.
   * @param options The error's fields and cause.
   */
  constructor(message: string, options: NativeLibraryErrorOptions) {
    super(message, options);
    this.path = options.path;
  }

  protected override details(): Record<string, unknown> {
    return { ...super.details(), path: this.path };
  }
}
