/**
 * The native library (`zig-out/lib/libsnakepit.so`) from Bun and Deno, behind one pointer-free
 * interface. This folder is the only TypeScript that sees pointers.
 *
 * @example
 * ```ts
 * import { openNativeLibrary } from "./mod.ts";
 *
 * const library = await openNativeLibrary();
 * console.log(library.abiVersion()); // 1
 * console.log(library.crc32c(new TextEncoder().encode("123456789")).toString(16)); // e3069283
 * library.close();
 * ```
 *
 * @module
 */
export {
  CRC32C_INPUT_BYTES_MAX,
  defaultNativeLibraryPath,
  NATIVE_ABI_VERSION,
  NATIVE_LIBRARY_PATH_VARIABLE,
  type NativeLibrary,
  openNativeLibrary,
} from "./native_library.ts";
export {
  NativeLibraryError,
  type NativeLibraryErrorOptions,
  type NativeLibraryFailure,
} from "./native_library_error.ts";
export {
  NATIVE_STATUS_NAME_BYTES_MAX,
  NativeStatus,
  type NativeSymbol,
  type NativeSymbolName,
  nativeSymbols,
  type NativeType,
} from "./symbols.ts";
