/**
 * The Deno loader: binds the symbol table through `Deno.dlopen`.
 *
 * @module
 */
import {
  type NativeBindings,
  type NativeFunctions,
  nativeSymbols,
  type NativeType,
} from "./symbols.ts";

/** Deno's names for the neutral types of the symbol table. */
const denoTypes = { u32: "u32", i32: "i32", buffer: "buffer" } as const satisfies Record<
  NativeType,
  Deno.NativeType
>;

/**
 * Opens the library at `path` with `Deno.dlopen` (needs `--allow-ffi`).
 *
 * @param path File system path of the shared library.
 * @returns The bound functions and a closer.
 * @throws Whatever `Deno.dlopen` throws when the file cannot be loaded or FFI is not allowed.
 */
export function openWithDeno(path: string): Promise<NativeBindings> {
  const definitions: Record<string, Deno.ForeignFunction> = {};
  for (const [name, symbol] of Object.entries(nativeSymbols)) {
    definitions[name] = {
      parameters: symbol.parameters.map((type) => denoTypes[type]),
      result: denoTypes[symbol.result],
    };
  }
  const library = Deno.dlopen(path, definitions);
  // Deno takes typed arrays (or null) for "buffer" parameters and returns numbers for "i32",
  // which is exactly the NativeFunctions contract.
  const functions = library.symbols as unknown as NativeFunctions;
  return Promise.resolve({ functions, close: () => library.close() });
}
