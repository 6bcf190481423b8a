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
 * - `"buffer"`: a pointer to memory the caller owns for the duration of the call, passed as a
 *   typed array (or `null`). Out-parameters are `Uint32Array(1)` buffers.
 */
export type NativeType = "u32" | "i32" | "buffer";

/** One exported function: its parameter types in order and its result type. */
export interface NativeSymbol {
  /** Parameter types, in declaration order. */
  readonly parameters: readonly NativeType[];
  /** The result type; every export returns an `i32` status. */
  readonly result: NativeType;
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
} as const;

/** The longest status name in bytes (`name_bytes_max` in `zig/status.zig`). */
export const NATIVE_STATUS_NAME_BYTES_MAX = 64;

/** The JS value a parameter of type `T` takes. */
export type NativeArgument<T extends NativeType> = T extends "buffer" ? ArrayBufferView | null
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

/** What a runtime loader (`_bun.ts`, `_deno.ts`) hands back: the bound functions and a closer. */
export interface NativeBindings {
  /** One function per symbol of {@link nativeSymbols}. */
  readonly functions: NativeFunctions;
  /** Unloads the library; the functions must not be called afterwards. */
  close(): void;
}
