/**
 * The Bun loader: binds the symbol table through `bun:ffi`.
 *
 * `bun:ffi` exists only under Bun, and Deno type-checks every module it imports, so the module
 * is imported through a computed specifier and described by the few local types below.
 *
 * Bun has no nonblocking FFI calls: blocking symbols are bound once, synchronously, and callers
 * poll them with a zero timeout (see region_lock.ts).
 *
 * @module
 */
import {
  type NativeBindings,
  type NativeFunctions,
  nativeSymbols,
  type NativeType,
} from "./symbols.ts";

/** The parts of `bun:ffi`'s `dlopen` definitions this loader uses. */
interface BunFunctionDefinition {
  readonly args: readonly string[];
  readonly returns: string;
}

/** The parts of `bun:ffi` this loader uses. */
interface BunFfiModule {
  dlopen(
    path: string,
    definitions: Record<string, BunFunctionDefinition>,
  ): { symbols: Record<string, (...parameters: unknown[]) => unknown>; close(): void };
  toArrayBuffer(address: number, byteOffset: number, byteLength: number): ArrayBuffer;
}

/** Bun's names for the neutral types of the symbol table. */
const bunTypes: Record<NativeType, string> = {
  u32: "u32",
  i32: "i32",
  u64: "u64",
  buffer: "ptr",
};

/**
 * Opens the library at `path` with `bun:ffi`.
 *
 * @param path File system path of the shared library.
 * @returns The bound functions and a closer.
 * @throws Whatever `bun:ffi`'s `dlopen` throws when the file cannot be loaded.
 */
export async function openWithBun(path: string): Promise<NativeBindings> {
  const specifier = ["bun", "ffi"].join(":");
  const ffi = (await import(specifier)) as BunFfiModule;
  const definitions: Record<string, BunFunctionDefinition> = {};
  for (const [name, symbol] of Object.entries(nativeSymbols)) {
    definitions[name] = {
      args: symbol.parameters.map((type) => bunTypes[type]),
      returns: bunTypes[symbol.result],
    };
  }
  const library = ffi.dlopen(path, definitions);
  // bun:ffi takes typed arrays for "ptr" parameters, numbers or bigints for "u64", and returns
  // numbers for "i32", which is exactly the NativeFunctions contract.
  const functions = library.symbols as unknown as NativeFunctions;
  return {
    runtime: "bun",
    functions,
    nonblocking: undefined,
    // Addresses of user space fit 47 bits, far inside a double's exact range.
    arrayBufferAt: (address, byteLength) => ffi.toArrayBuffer(Number(address), 0, byteLength),
    close: () => library.close(),
  };
}
