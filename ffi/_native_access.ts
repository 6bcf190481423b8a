/**
 * Internal: how the classes of this folder (Region, descriptors, the reaper) reach the bindings
 * of an opened {@link NativeLibrary} without the public interface exposing them.
 *
 * @module
 */
import type { NativeBindings } from "./symbols.ts";

/** What an opened library lends to the other classes of ffi/. */
export interface NativeAccess {
  /** The library's path, for error messages. */
  readonly path: string;
  /** The bindings, or a `closed` NativeLibraryError naming `op` once the library is closed. */
  bindings(op: string): NativeBindings;
  /** Runs `closer` before the library unloads; returns a function that unregisters it. */
  onClose(closer: () => void): () => void;
  /**
   * Keeps the library loaded until `call` (a nonblocking native call, running on another
   * thread) settles: unloading code a thread still runs would crash the process.
   */
  track<T>(call: Promise<T>): Promise<T>;
}

const accessByLibrary = new WeakMap<object, NativeAccess>();

/** Called by the library's constructor. */
export function registerNativeAccess(library: object, access: NativeAccess): void {
  accessByLibrary.set(library, access);
}

/**
 * The access of `library`, or a TypeError naming `action` when it is not an opened library.
 *
 * @throws {TypeError} When `library` did not come from `openNativeLibrary()`.
 */
export function nativeAccess(library: unknown, action: string): NativeAccess {
  const access = typeof library === "object" && library !== null
    ? accessByLibrary.get(library)
    : undefined;
  if (access === undefined) {
    throw new TypeError(
      `Cannot ${action}: library must be a NativeLibrary from openNativeLibrary(), received ` +
        (library === null ? "null" : typeof library),
    );
  }
  return access;
}
