/**
 * Opens the native library under Bun or Deno and wraps its symbols in a pointer-free API.
 *
 * @module
 */
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { NativeLibraryError, type NativeLibraryFailure } from "./native_library_error.ts";
import {
  NATIVE_STATUS_NAME_BYTES_MAX,
  type NativeBindings,
  type NativeFunctions,
  NativeStatus,
} from "./symbols.ts";

/** The ABI version this module is written for; a library reporting another one is refused. */
export const NATIVE_ABI_VERSION = 1;

/** The environment variable that overrides the library's path. */
export const NATIVE_LIBRARY_PATH_VARIABLE = "SNAKEPIT_NATIVE_LIB";

/** The largest input one `crc32c` call takes, in bytes (the ABI passes lengths as `u32`). */
export const CRC32C_INPUT_BYTES_MAX = 0xffff_ffff;

const BUILD_HINT = "Run `make setup` to build it, or set SNAKEPIT_NATIVE_LIB to its path.";

/** The native library, opened; every method is synchronous and pointer-free. */
export interface NativeLibrary {
  /** The path the library was opened from. */
  readonly path: string;
  /** The library's ABI version (equals {@link NATIVE_ABI_VERSION} once opened). */
  abiVersion(): number;
  /** The library's version, as `"major.minor.patch"`. */
  libraryVersion(): string;
  /** The CRC-32C (Castagnoli) of `bytes`, as an unsigned 32-bit number. */
  crc32c(bytes: Uint8Array): number;
  /** The stable name of a native status code (`"unknown(<code>)"` for codes it does not define). */
  statusName(status: number): string;
  /** Unloads the library. Idempotent; afterwards every method throws a `closed` error. */
  close(): void;
  /** Same as {@link NativeLibrary.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * The path {@link openNativeLibrary} uses when given none: `SNAKEPIT_NATIVE_LIB` if set, else the
 * repository's `zig-out/lib/libsnakepit.so` (`.dylib` on macOS).
 *
 * @returns A file system path (or a bare file name when this module is not loaded from disk).
 * @example
 * ```ts
 * import { defaultNativeLibraryPath } from "./mod.ts";
 * console.log(defaultNativeLibraryPath()); // .../zig-out/lib/libsnakepit.so
 * ```
 */
export function defaultNativeLibraryPath(): string {
  const fromEnvironment = readEnvironment(NATIVE_LIBRARY_PATH_VARIABLE);
  if (fromEnvironment !== undefined && fromEnvironment !== "") return fromEnvironment;
  const fileName = process.platform === "darwin" ? "libsnakepit.dylib" : "libsnakepit.so";
  const url = new URL(`../zig-out/lib/${fileName}`, import.meta.url);
  // Loaded from a registry rather than a checkout there is no zig-out beside us; let the
  // system's library search find it instead.
  return url.protocol === "file:" ? fileURLToPath(url) : fileName;
}

/**
 * Opens the native library and checks that its ABI version is {@link NATIVE_ABI_VERSION}.
 *
 * @param path The shared library to open; defaults to {@link defaultNativeLibraryPath}.
 * @returns The opened library; close it when done.
 * @throws {NativeLibraryError} `statusName` `not_found`, `load_failed`, `unsupported_runtime`
 *   or `abi_mismatch`, with a message naming the path and the fix.
 * @example
 * ```ts
 * import { openNativeLibrary } from "./mod.ts";
 * const library = await openNativeLibrary();
 * console.log(library.crc32c(new TextEncoder().encode("123456789")).toString(16)); // e3069283
 * library.close();
 * ```
 */
export async function openNativeLibrary(path?: string): Promise<NativeLibrary> {
  const libraryPath = path ?? defaultNativeLibraryPath();
  if (typeof libraryPath !== "string" || libraryPath === "") {
    throw new TypeError(
      `Cannot open the native library: path must be a non-empty string, received ${String(path)}`,
    );
  }
  const bindings = await loadBindings(libraryPath);
  const library = new OpenedNativeLibrary(libraryPath, bindings);
  let abiVersion: number;
  try {
    abiVersion = library.abiVersion();
  } catch (error) {
    library.close();
    throw error;
  }
  if (abiVersion !== NATIVE_ABI_VERSION) {
    library.close();
    throw failure(
      "open",
      "abi_mismatch",
      libraryPath,
      `Cannot use the native library at ${libraryPath}: it has ABI version ${abiVersion}, this ` +
        `module needs ${NATIVE_ABI_VERSION}. Rebuild it with \`make setup\`, or set ` +
        `SNAKEPIT_NATIVE_LIB to a matching build.`,
    );
  }
  return library;
}

async function loadBindings(path: string): Promise<NativeBindings> {
  const scope = globalThis as { Bun?: unknown; Deno?: unknown };
  let open: (path: string) => Promise<NativeBindings>;
  let permissionHint = "";
  if (typeof scope.Deno === "object" && scope.Deno !== null) {
    open = (await import("./_deno.ts")).openWithDeno;
    permissionHint = "that FFI is allowed (--allow-ffi) and ";
  } else if (typeof scope.Bun === "object" && scope.Bun !== null) {
    open = (await import("./_bun.ts")).openWithBun;
  } else {
    throw failure(
      "open",
      "unsupported_runtime",
      path,
      `Cannot load the native library at ${path}: this runtime has no FFI loader. Run under ` +
        `Bun or Deno.`,
    );
  }
  try {
    return await open(path);
  } catch (cause) {
    if (!fileExists(path)) {
      throw failure(
        "open",
        "not_found",
        path,
        `Cannot load the native library at ${path}: file not found. ${BUILD_HINT}`,
        cause,
      );
    }
    const reason = (cause instanceof Error ? cause.message : String(cause)).replace(/\.$/, "");
    throw failure(
      "open",
      "load_failed",
      path,
      `Cannot load the native library at ${path}: ${reason}. Check ${permissionHint}that the ` +
        `file is a shared library built for this machine. ${BUILD_HINT}`,
      cause,
    );
  }
}

class OpenedNativeLibrary implements NativeLibrary {
  readonly path: string;
  #bindings: NativeBindings | undefined;
  // Calls are synchronous and JS is single-threaded, so one set of out-parameters is reused.
  readonly #words = [new Uint32Array(1), new Uint32Array(1), new Uint32Array(1)] as const;
  readonly #nameBuffer = new Uint8Array(NATIVE_STATUS_NAME_BYTES_MAX);

  constructor(path: string, bindings: NativeBindings) {
    this.path = path;
    this.#bindings = bindings;
  }

  abiVersion(): number {
    const [version] = this.#words;
    this.#check("abiVersion", this.#functions("abiVersion").snakepit_abi_version(version));
    return version[0];
  }

  libraryVersion(): string {
    const [major, minor, patch] = this.#words;
    const functions = this.#functions("libraryVersion");
    this.#check("libraryVersion", functions.snakepit_library_version(major, minor, patch));
    return `${major[0]}.${minor[0]}.${patch[0]}`;
  }

  crc32c(bytes: Uint8Array): number {
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot compute crc32c: bytes must be a Uint8Array, received ${describe(bytes)}`,
      );
    }
    if (bytes.byteLength > CRC32C_INPUT_BYTES_MAX) {
      throw new RangeError(
        `Cannot compute crc32c: bytes must be at most ${CRC32C_INPUT_BYTES_MAX} bytes, ` +
          `received ${bytes.byteLength}`,
      );
    }
    const functions = this.#functions("crc32c");
    const [crc] = this.#words;
    // An empty view may have no backing address; the ABI takes null with length 0.
    const data = bytes.byteLength === 0 ? null : bytes;
    this.#check("crc32c", functions.snakepit_crc32c(data, bytes.byteLength, crc));
    return crc[0];
  }

  statusName(status: number): string {
    if (!Number.isInteger(status) || status < -0x8000_0000 || status > 0x7fff_ffff) {
      throw new RangeError(
        `Cannot name a native status: status must be a 32-bit integer, received ${status}`,
      );
    }
    const functions = this.#functions("statusName");
    const [length] = this.#words;
    const buffer = this.#nameBuffer;
    const result = functions.snakepit_status_name(status, buffer, buffer.byteLength, length);
    if (result === NativeStatus.invalid_argument) return `unknown(${status})`;
    this.#check("statusName", result);
    return new TextDecoder().decode(buffer.subarray(0, length[0]));
  }

  close(): void {
    const bindings = this.#bindings;
    this.#bindings = undefined;
    bindings?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #functions(op: string): NativeFunctions {
    if (this.#bindings === undefined) {
      throw failure(
        op,
        "closed",
        this.path,
        `Cannot call ${op}: the native library at ${this.path} is closed. Open it again with ` +
          `openNativeLibrary().`,
      );
    }
    return this.#bindings.functions;
  }

  #check(op: string, status: number): void {
    if (status === NativeStatus.ok) return;
    // Named from the local mirror rather than through statusName(), so a failing library
    // cannot fail again while its own error is being reported.
    const entry = Object.entries(NativeStatus).find(([, code]) => code === status);
    const statusName = entry === undefined ? `unknown(${status})` : entry[0];
    throw new NativeLibraryError(
      `Native call ${op} failed at ${this.path} with status ${statusName} (${status}). This is a ` +
        `bug in Snakepit or a mismatched library; rebuild it with \`make setup\`.`,
      { op, status, statusName, path: this.path },
    );
  }
}

function failure(
  op: string,
  statusName: NativeLibraryFailure,
  path: string,
  message: string,
  cause?: unknown,
): NativeLibraryError {
  return new NativeLibraryError(message, { op, status: 0, statusName, path, cause });
}

function readEnvironment(name: string): string | undefined {
  try {
    return process.env[name];
  } catch {
    // Deno without --allow-env throws; an unreadable variable counts as unset.
    return undefined;
  }
}

function fileExists(path: string): boolean {
  try {
    return existsSync(path);
  } catch {
    return false;
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}
