/**
 * The one symbol table of the native library, from which the Bun and Deno loaders build their
 * `dlopen` definitions.
 *
 * It mirrors the `export fn` declarations of `zig/c_api.zig`; the Python binding
 * (`snakepit_bridge.native`) keeps the same table, and `tests/native_symbols.test.ts` checks all
 * three against each other.
 *
 * @module
 */

/**
 * Runtime-neutral parameter and result types.
 *
 * - `"u32"`, `"i32"`: fixed-width integers, passed as JS numbers.
 * - `"u64"`: a 64-bit unsigned integer (sizes past 4 GiB, timeouts in ns), passed as a bigint.
 * - `"buffer"`: a pointer to memory the caller owns for the duration of the call, passed as a
 *   typed array (or `null`). Out-parameters are `Uint32Array(1)` / `BigUint64Array(1)` buffers.
 */
export type NativeType = "u32" | "i32" | "u64" | "buffer";

/** One exported function: its parameter types in order and its result type. */
export interface NativeSymbol {
  /** Parameter types, in declaration order. */
  readonly parameters: readonly NativeType[];
  /** The result type; every export returns an `i32` status. */
  readonly result: NativeType;
  /**
   * The call may block its thread (a lock wait). Deno also binds it as a nonblocking symbol,
   * run on a worker thread and returning a promise; Bun, which has no such binding, polls.
   */
  readonly blocking?: true;
}

/**
 * Every symbol the library exports, by name.
 *
 * @example
 * ```ts
 * import { nativeSymbols } from "./symbols.ts";
 * console.log(nativeSymbols.snakepit_crc32c.parameters); // ["buffer", "u32", "buffer"]
 * ```
 */
export const nativeSymbols = {
  /** (out_version) -> status */
  snakepit_abi_version: { parameters: ["buffer"], result: "i32" },
  /** (out_major, out_minor, out_patch) -> status */
  snakepit_library_version: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  /** (data, data_bytes, out_crc) -> status */
  snakepit_crc32c: { parameters: ["buffer", "u32", "buffer"], result: "i32" },
  /** (status, out_name, name_capacity_bytes, out_name_bytes) -> status */
  snakepit_status_name: { parameters: ["i32", "buffer", "u32", "buffer"], result: "i32" },
  /** (out_words, capacity_words, out_count) -> status */
  snakepit_limits: { parameters: ["buffer", "u32", "buffer"], result: "i32" },
  /** (out_words, capacity_words, out_count) -> status */
  snakepit_header_layout: { parameters: ["buffer", "u32", "buffer"], result: "i32" },
  /** (out_words, capacity_words, out_count) -> status */
  snakepit_descriptor_layout: { parameters: ["buffer", "u32", "buffer"], result: "i32" },
  /** (out_bytes, out_error) -> status */
  snakepit_shm_available: { parameters: ["buffer", "buffer"], result: "i32" },
  /** (out_regions, out_mapped_bytes) -> status */
  snakepit_process_usage: { parameters: ["buffer", "buffer"], result: "i32" },
  /** (instance, instance_bytes, payload_bytes, flags, out_handle, out_error) -> status */
  snakepit_region_create: {
    parameters: ["buffer", "u32", "u64", "u32", "buffer", "buffer"],
    result: "i32",
  },
  /** (name, name_bytes, expected_generation, flags, out_handle, out_error) -> status */
  snakepit_region_open: {
    parameters: ["buffer", "u32", "u64", "u32", "buffer", "buffer"],
    result: "i32",
  },
  /** (handle, out_unlinked) -> status */
  snakepit_region_close: { parameters: ["u32", "buffer"], result: "i32" },
  /** (name, name_bytes, out_error) -> status */
  snakepit_region_unlink: { parameters: ["buffer", "u32", "buffer"], result: "i32" },
  /** (handle, out_address, out_bytes) -> status */
  snakepit_region_payload: { parameters: ["u32", "buffer", "buffer"], result: "i32" },
  /** (handle, out_words, capacity_words, out_count) -> status */
  snakepit_region_info: { parameters: ["u32", "buffer", "u32", "buffer"], result: "i32" },
  /** (handle, out_name, name_capacity_bytes, out_name_bytes) -> status */
  snakepit_region_name: { parameters: ["u32", "buffer", "u32", "buffer"], result: "i32" },
  /** (handle, out_fd, out_error) -> status */
  snakepit_region_duplicate_fd: { parameters: ["u32", "buffer", "buffer"], result: "i32" },
  /** (handle) -> status */
  snakepit_region_retain: { parameters: ["u32"], result: "i32" },
  /** (handle, out_unlinked, out_error) -> status */
  snakepit_region_release: { parameters: ["u32", "buffer", "buffer"], result: "i32" },
  /** (handle, out_generation) -> status */
  snakepit_region_bump_generation: { parameters: ["u32", "buffer"], result: "i32" },
  /**
   * (handle, word_offset, expected, parked_offset, spin_ns, timeout_ns, out_value) -> status;
   * may block: Deno binds a nonblocking twin
   */
  snakepit_region_wait_word: {
    parameters: ["u32", "u64", "u32", "u64", "u64", "u64", "buffer"],
    result: "i32",
    blocking: true,
  },
  /** (handle, word_offset, value, parked_offset, out_was_parked) -> status */
  snakepit_region_publish_word: {
    parameters: ["u32", "u64", "u32", "u64", "buffer"],
    result: "i32",
  },
  /** (handle, word_offset) -> status */
  snakepit_region_wake_word: { parameters: ["u32", "u64"], result: "i32" },
  /** (handle, mode, timeout_ns, flags) -> status; may block: Deno binds a nonblocking twin */
  snakepit_lock_acquire: {
    parameters: ["u32", "u32", "u64", "u32"],
    result: "i32",
    blocking: true,
  },
  /** (handle, mode) -> status */
  snakepit_lock_release: { parameters: ["u32", "u32"], result: "i32" },
  /** (handle) -> status */
  snakepit_lock_cancel: { parameters: ["u32"], result: "i32" },
  /** (instance, instance_bytes, grace_ms, out_report, out_error) -> status */
  snakepit_reap: { parameters: ["buffer", "u32", "u32", "buffer", "buffer"], result: "i32" },
  /** (bytes, bytes_length, payload_bytes, out_extent) -> status */
  snakepit_descriptor_validate: { parameters: ["buffer", "u32", "u64", "buffer"], result: "i32" },
  /** (handle, bytes, bytes_length, out_extent) -> status */
  snakepit_descriptor_check: { parameters: ["u32", "buffer", "u32", "buffer"], result: "i32" },
  /** (bytes, bytes_length, out_bytes, capacity_bytes, out_length) -> status */
  snakepit_descriptor_normalize: {
    parameters: ["buffer", "u32", "buffer", "u32", "buffer"],
    result: "i32",
  },
} as const satisfies Record<string, NativeSymbol>;

/** The name of an exported symbol. */
export type NativeSymbolName = keyof typeof nativeSymbols;

/**
 * Status codes of the native library (`zig/status.zig`): 0 is ok, negative values are errors.
 *
 * @example
 * ```ts
 * import { NativeStatus } from "./symbols.ts";
 * console.log(NativeStatus.invalid_argument); // -1
 * ```
 */
export const NativeStatus = {
  ok: 0,
  invalid_argument: -1,
  buffer_too_small: -2,
  os_error: -3,
  not_found: -4,
  already_exists: -5,
  not_snakepit_region: -6,
  layout_mismatch: -7,
  generation_mismatch: -8,
  corrupt_header: -9,
  region_too_large: -10,
  process_bytes_exhausted: -11,
  process_regions_exhausted: -12,
  shm_full: -13,
  invalid_handle: -14,
  handle_closed: -15,
  over_release: -16,
  holder_table_full: -17,
  region_released: -18,
  reference_overflow: -19,
  would_block: -20,
  timed_out: -21,
  owner_dead: -22,
  not_locked: -23,
  reader_table_full: -24,
  cancelled: -25,
  descriptor_malformed: -26,
  unsupported_dtype: -27,
  unsupported_device: -28,
  descriptor_out_of_bounds: -29,
  descriptor_misaligned: -30,
  descriptor_overflow: -31,
  descriptor_region_mismatch: -32,
  invalid_name: -33,
} as const;

/** A status name of the native library. */
export type NativeStatusName = keyof typeof NativeStatus;

/**
 * The system operations a native failure can name (`zig/os_failure.zig`), by code: the second
 * word of an error record (the first is errno).
 */
export const NativeOp = {
  none: 0,
  shm_open: 1,
  ftruncate: 2,
  fstat: 3,
  mmap: 4,
  munmap: 5,
  shm_unlink: 6,
  statvfs: 7,
  getrandom: 8,
  fallocate: 9,
  opendir: 10,
  close: 11,
  fcntl: 12,
} as const;

/** Words in an error record: errno, then the {@link NativeOp} code. */
export const NATIVE_ERROR_RECORD_WORDS = 2;

/** The longest status name in bytes (`name_bytes_max` in `zig/status.zig`). */
export const NATIVE_STATUS_NAME_BYTES_MAX = 64;

/** The JS value a parameter of type `T` takes. */
export type NativeArgument<T extends NativeType> = T extends "buffer" ? ArrayBufferView | null
  : T extends "u64" ? bigint
  : number;

/** The JS values a parameter list takes, as a tuple. */
export type NativeArguments<P extends readonly NativeType[]> = {
  -readonly [I in keyof P]: P[I] extends NativeType ? NativeArgument<P[I]> : never;
};

/** The JS signature of one symbol: numbers and typed arrays in, an `i32` status out. */
export type NativeFunction<S extends NativeSymbol> = (
  ...parameters: NativeArguments<S["parameters"]>
) => number;

/** The bound functions a loader returns, one per symbol. */
export type NativeFunctions = {
  readonly [Name in NativeSymbolName]: NativeFunction<(typeof nativeSymbols)[Name]>;
};

/** The names of the symbols that may block their thread. */
export type NativeBlockingSymbolName = {
  [Name in NativeSymbolName]: (typeof nativeSymbols)[Name] extends { blocking: true } ? Name
    : never;
}[NativeSymbolName];

/** Promise-returning twins of the blocking symbols, run off the JS thread (Deno only). */
export type NativeNonblockingFunctions = {
  readonly [Name in NativeBlockingSymbolName]: (
    ...parameters: NativeArguments<(typeof nativeSymbols)[Name]["parameters"]>
  ) => Promise<number>;
};

/** What a runtime loader (`_bun.ts`, `_deno.ts`) hands back: the bound functions and a closer. */
export interface NativeBindings {
  /** Which runtime bound them. */
  readonly runtime: "bun" | "deno";
  /** One function per symbol of {@link nativeSymbols}. */
  readonly functions: NativeFunctions;
  /** The blocking symbols bound to run off the JS thread, where the runtime can (Deno). */
  readonly nonblocking: NativeNonblockingFunctions | undefined;
  /**
   * An `ArrayBuffer` over `byteLength` bytes of native memory at `address` (no copy). The
   * caller must detach it (`transfer(0)`) before that memory is unmapped.
   */
  arrayBufferAt(address: bigint, byteLength: number): ArrayBuffer;
  /** Unloads the library; the functions must not be called afterwards. */
  close(): void;
}
