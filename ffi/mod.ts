/**
 * The native library (`zig-out/lib/libsnakepit.so`) from Bun and Deno, behind one pointer-free
 * interface: shared-memory regions with cross-process reference counts and RW locks, tensor
 * descriptors, and the reaper. This folder is the only TypeScript that sees pointers.
 *
 * @example
 * ```ts
 * import { openNativeLibrary, Region } from "./mod.ts";
 *
 * const library = await openNativeLibrary();
 * console.log(library.abiVersion()); // 1
 * console.log(library.crc32c(new TextEncoder().encode("123456789")).toString(16)); // e3069283
 * const region = Region.create(library, { payloadBytes: 16, instance: "docs" });
 * region.bytes().set([1, 2, 3]);
 * region.close();
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
  type NativeLimits,
  openNativeLibrary,
} from "./native_library.ts";
export {
  NativeLibraryError,
  type NativeLibraryErrorOptions,
  type NativeLibraryFailure,
} from "./native_library_error.ts";
export {
  describeErrno,
  SharedMemoryError,
  type SharedMemoryErrorOptions,
} from "./shared_memory_error.ts";
export {
  Region,
  REGION_INSTANCE_PATTERN,
  REGION_NAME_PATTERN,
  REGION_PAYLOAD_BYTES_MAX,
  type RegionCreateOptions,
  type RegionInfo,
  type RegionOpenOptions,
  type TypedArrayConstructor,
} from "./region.ts";
export { type LockMode, type LockOptions, RegionLock } from "./region_lock.ts";
export { type WaitWordOptions, type WaitWordResult, WORD_SPIN_NS_MAX } from "./region_words.ts";
export { unlinkRegion } from "./unlink_region.ts";
export {
  NATIVE_ERROR_RECORD_WORDS,
  NATIVE_STATUS_NAME_BYTES_MAX,
  NativeOp,
  NativeStatus,
  type NativeStatusName,
  type NativeSymbol,
  type NativeSymbolName,
  nativeSymbols,
  type NativeType,
} from "./symbols.ts";
export {
  decodeDescriptor,
  DESCRIPTOR_BYTES,
  DESCRIPTOR_FIELDS,
  DESCRIPTOR_NDIM_MAX,
  type DtypeName,
  DTYPES,
  encodeDescriptor,
  normalizeDescriptor,
  type TensorDescriptor,
  validateDescriptor,
} from "./tensor_descriptor.ts";
export {
  HEADER_BYTES,
  HEADER_FIELDS,
  HEADER_MAGIC,
  readRegionHeader,
  type RegionHeader,
} from "./region_header.ts";
export { reapRegions, type RegionReapOptions, type RegionReapReport } from "./reaper.ts";
export { onRegionEvent, type RegionEvent } from "./region_events.ts";
