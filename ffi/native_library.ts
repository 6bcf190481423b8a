/**
 * Opens the native library under Bun or Deno and wraps its symbols in a pointer-free API.
 *
 * @module
 */
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { registerNativeAccess } from "./_native_access.ts";
import { NativeLibraryError, type NativeLibraryFailure } from "./native_library_error.ts";
import {
  NATIVE_ERROR_RECORD_WORDS,
  NATIVE_STATUS_NAME_BYTES_MAX,
  type NativeBindings,
  type NativeFunctions,
  NativeStatus,
} from "./symbols.ts";
import { errorFromStatus } from "./shared_memory_error.ts";
import { LIMIT_NAMES, type NativeLimits } from "./native_limits.ts";

export type { NativeLimits } from "./native_limits.ts";

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
  /** The library's limits and layout constants. */
  limits(): NativeLimits;
  /** Bytes an unprivileged process can still allocate in `/dev/shm`. */
  shmAvailableBytes(): number;
  /** The regions this process has open and the bytes they map. */
  processUsage(): { regions: number; mappedBytes: number };
  /** The region header's layout: `[offset, bytes]` per field, in `HEADER_FIELDS` order. */
  headerLayout(): Array<[offset: number, bytes: number]>;
  /** The encoded descriptor's layout: `[offset, bytes]` per field, in `DESCRIPTOR_FIELDS` order. */
  descriptorLayout(): Array<[offset: number, bytes: number]>;
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

  readonly #closers = new Set<() => void>();
  #callsInFlight = 0;
  #unloadPending = false;

  constructor(path: string, bindings: NativeBindings) {
    this.path = path;
    this.#bindings = bindings;
    registerNativeAccess(this, {
      path,
      bindings: (op) => this.#bindingsFor(op),
      onClose: (closer) => {
        this.#closers.add(closer);
        return () => this.#closers.delete(closer);
      },
      track: (call) => {
        this.#callsInFlight += 1;
        return call.finally(() => {
          this.#callsInFlight -= 1;
          if (this.#callsInFlight === 0 && this.#unloadPending) this.#unload(bindings);
        });
      },
    });
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

  limits(): NativeLimits {
    const words = new BigUint64Array(LIMIT_NAMES.length);
    const [count] = this.#words;
    const status = this.#functions("limits").snakepit_limits(words, words.length, count);
    this.#check("limits", status);
    const entries = LIMIT_NAMES.map((name, index) => [name, Number(words[index])]);
    return Object.fromEntries(entries) as unknown as NativeLimits;
  }

  shmAvailableBytes(): number {
    const bytes = new BigUint64Array(1);
    const record = new Uint32Array(NATIVE_ERROR_RECORD_WORDS);
    const status = this.#functions("shmAvailableBytes").snakepit_shm_available(bytes, record);
    if (status !== NativeStatus.ok) {
      throw errorFromStatus({ op: "shmAvailableBytes", status, record, path: this.path });
    }
    return Number(bytes[0]);
  }

  processUsage(): { regions: number; mappedBytes: number } {
    const [regions] = this.#words;
    const bytes = new BigUint64Array(1);
    const status = this.#functions("processUsage").snakepit_process_usage(regions, bytes);
    this.#check("processUsage", status);
    return { regions: regions[0], mappedBytes: Number(bytes[0]) };
  }

  headerLayout(): Array<[offset: number, bytes: number]> {
    return this.#layout("headerLayout", "snakepit_header_layout");
  }

  descriptorLayout(): Array<[offset: number, bytes: number]> {
    return this.#layout("descriptorLayout", "snakepit_descriptor_layout");
  }

  #layout(
    op: string,
    symbol: "snakepit_header_layout" | "snakepit_descriptor_layout",
  ): Array<[number, number]> {
    const layoutWordsMax = 64;
    const words = new Uint32Array(layoutWordsMax);
    const [count] = this.#words;
    this.#check(op, this.#functions(op)[symbol](words, words.length, count));
    const pairs: Array<[number, number]> = [];
    for (let index = 0; index < count[0]; index += 2) pairs.push([words[index], words[index + 1]]);
    return pairs;
  }

  close(): void {
    const bindings = this.#bindings;
    if (bindings === undefined) return;
    // Regions live in the library's handle table: close them while the library is still loaded.
    for (const closer of [...this.#closers]) closer();
    this.#closers.clear();
    this.#bindings = undefined;
    // Closing the regions ended their waits, but a worker thread may still be returning from
    // one: unload once the last nonblocking call settled.
    if (this.#callsInFlight > 0) this.#unloadPending = true;
    else this.#unload(bindings);
  }

  #unload(bindings: NativeBindings): void {
    this.#unloadPending = false;
    bindings.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #functions(op: string): NativeFunctions {
    return this.#bindingsFor(op).functions;
  }

  #bindingsFor(op: string): NativeBindings {
    if (this.#bindings === undefined) {
      throw failure(
        op,
        "closed",
        this.path,
        `Cannot call ${op}: the native library at ${this.path} is closed. Open it again with ` +
          `openNativeLibrary().`,
      );
    }
    return this.#bindings;
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
