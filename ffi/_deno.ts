/**
 * The Deno loader: binds the symbol table through `Deno.dlopen`.
 *
 * Blocking symbols are bound twice: synchronously under their own name, and as a nonblocking
 * twin (`nonblocking: true`) that Deno runs on a worker thread and that returns a promise, so a
 * lock wait never freezes the event loop.
 *
 * @module
 */
import {
  type NativeBindings,
  type NativeFunctions,
  type NativeNonblockingFunctions,
  nativeSymbols,
  type NativeType,
} from "./symbols.ts";

/** Deno's names for the neutral types of the symbol table. */
const denoTypes = {
  u32: "u32",
  i32: "i32",
  u64: "u64",
  buffer: "buffer",
} as const satisfies Record<NativeType, Deno.NativeType>;

/** The key under which a blocking symbol's nonblocking twin is bound. */
const nonblockingKey = (name: string): string => `${name}__nonblocking`;

/**
 * Opens the library at `path` with `Deno.dlopen` (needs `--allow-ffi`).
 *
 * @param path File system path of the shared library.
 * @returns The bound functions and a closer.
 * @throws Whatever `Deno.dlopen` throws when the file cannot be loaded or FFI is not allowed.
 */
export function openWithDeno(path: string): Promise<NativeBindings> {
  const definitions: Record<string, Deno.ForeignFunction> = {};
  const blocking: string[] = [];
  for (const [name, symbol] of Object.entries(nativeSymbols)) {
    const definition = {
      parameters: symbol.parameters.map((type) => denoTypes[type]),
      result: denoTypes[symbol.result],
    };
    definitions[name] = definition;
    if ("blocking" in symbol && symbol.blocking) {
      definitions[nonblockingKey(name)] = { ...definition, name, nonblocking: true };
      blocking.push(name);
    }
  }
  const library = Deno.dlopen(path, definitions);
  const symbols = library.symbols as unknown as Record<string, unknown>;
  // Deno takes typed arrays (or null) for "buffer" parameters, bigints for "u64", and returns
  // numbers for "i32", which is exactly the NativeFunctions contract.
  const functions = symbols as unknown as NativeFunctions;
  const nonblocking = Object.fromEntries(
    blocking.map((name) => [name, symbols[nonblockingKey(name)]]),
  ) as unknown as NativeNonblockingFunctions;
  return Promise.resolve({
    runtime: "deno",
    functions,
    nonblocking,
    arrayBufferAt: (address, byteLength) => {
      const pointer = Deno.UnsafePointer.create(address);
      if (pointer === null) throw new RangeError("Cannot view native memory at address 0");
      return Deno.UnsafePointerView.getArrayBuffer(pointer, byteLength);
    },
    close: () => library.close(),
  });
}
