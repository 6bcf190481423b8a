/**
 * A named shared-memory region, mapped into this process, with its reference count and lock.
 *
 * @module
 */
import { emitRegionEvent } from "./region_events.ts";
import { type NativeAccess, nativeAccess } from "./_native_access.ts";
import {
  acquire,
  LOCK_MODE_CODES,
  type LockMode,
  type LockOptions,
  type LockTarget,
  RegionLock,
  tryAcquire,
} from "./region_lock.ts";
import {
  createRegionHandle,
  decodeRegionInfo,
  INFO_WORDS,
  openRegionHandle,
  type RegionCreateOptions,
  type RegionInfo,
  type RegionOpenOptions,
} from "./_region_native.ts";
import { errorFromStatus, SharedMemoryError } from "./shared_memory_error.ts";
import {
  publishWord,
  waitWord,
  type WaitWordOptions,
  type WaitWordResult,
  waitWordSync,
  wakeWord,
  type WordTarget,
} from "./region_words.ts";
import { NATIVE_ERROR_RECORD_WORDS, type NativeBindings, NativeStatus } from "./symbols.ts";

export {
  REGION_INSTANCE_PATTERN,
  REGION_NAME_PATTERN,
  REGION_PAYLOAD_BYTES_MAX,
  type RegionCreateOptions,
  type RegionInfo,
  type RegionOpenOptions,
} from "./_region_native.ts";

/** A typed-array constructor a Region can view its payload through. */
export type TypedArrayConstructor<T> = {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
};

/**
 * A shared-memory region: `create` one, or `open` one by name in another process; read and
 * write its payload through typed-array views; count references; take its RW lock.
 *
 * Views never outlive the mapping: `close()` detaches the payload's ArrayBuffer (every view made
 * from it then has length 0 and reads `undefined`, never freed memory), and every method throws
 * a `closed` SharedMemoryError afterwards, without reaching native code.
 *
 * @example
 * ```ts
 * import { openNativeLibrary, Region } from "./mod.ts";
 * const library = await openNativeLibrary();
 * using region = Region.create(library, { payloadBytes: 1024, instance: "docs" });
 * region.view(Float64Array, 0, 4).set([1, 2, 3, 4]);
 * using reader = Region.open(library, region.name);
 * console.log(reader.view(Float64Array, 0, 4)[3]); // 4
 * ```
 */
export class Region implements Disposable, AsyncDisposable {
  /** The region's name, to open it elsewhere. */
  readonly name: string;
  /** The payload's size in bytes. */
  readonly payloadBytes: number;
  readonly #access: NativeAccess;
  #handle: number | undefined;
  #buffer: ArrayBuffer | undefined;
  readonly #unregister: () => void;
  readonly #lockTarget: LockTarget;
  readonly #wordTarget: WordTarget;

  private constructor(access: NativeAccess, handle: number, name: string, payloadBytes: number) {
    this.#access = access;
    this.#handle = handle;
    this.name = name;
    this.payloadBytes = payloadBytes;
    this.#unregister = access.onClose(() => this.close());
    const bindingsFor = (op: string) => this.#bindings(op);
    this.#lockTarget = {
      get bindings() {
        return bindingsFor("lock");
      },
      handle,
      track: (call) => access.track(call),
      checkOpen: (op) => void this.#liveHandle(op),
      fail: (op, status) => this.#fail(op, status, `Cannot ${op} region ${this.name}`),
    };
    this.#wordTarget = {
      name,
      payloadBytes,
      path: access.path,
      bindings: bindingsFor,
      handle: (op) => this.#liveHandle(op),
      track: (call) => access.track(call),
      fail: (op, status) => this.#fail(op, status, `Cannot ${op} on region ${this.name}`),
    };
  }

  /**
   * Creates a region (mode 0600) with a payload of `options.payloadBytes` zero bytes. This Region
   * holds its first reference; `close()` gives it back, unlinking the region if it was the last.
   *
   * @throws {RangeError} payloadBytes or instance out of range.
   * @throws {SharedMemoryError} shm_full (with how to enlarge /dev/shm), region_too_large,
   *   process_regions_exhausted, process_bytes_exhausted, os_error (with errno).
   */
  static create(library: unknown, options: RegionCreateOptions): Region {
    const access = nativeAccess(library, "create a shared-memory region");
    const created = createRegionHandle(access, options);
    const region = new Region(access, created.handle, created.name, created.payloadBytes);
    emitRegionEvent({ kind: "allocate", name: created.name, payloadBytes: created.payloadBytes });
    return region;
  }

  /**
   * Opens and maps the region `name` (created by any process). By default this Region holds a
   * reference until `close()`, so the region outlives its creator's release.
   *
   * @throws {TypeError | RangeError} A name that is not `/snakepit-<instance>-<32 hex>`.
   * @throws {SharedMemoryError} not_found, generation_mismatch, region_released,
   *   not_snakepit_region, layout_mismatch, corrupt_header, holder_table_full, os_error.
   */
  static open(library: unknown, name: string, options: RegionOpenOptions = {}): Region {
    const access = nativeAccess(library, "open a shared-memory region");
    const opened = openRegionHandle(access, name, options);
    const region = new Region(access, opened.handle, name, opened.payloadBytes);
    emitRegionEvent({ kind: "open", name, payloadBytes: opened.payloadBytes });
    return region;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#handle === undefined;
  }

  /**
   * The whole payload as bytes (no copy). Valid until `close()`, which detaches it.
   *
   * @throws {SharedMemoryError} `closed` after close().
   */
  bytes(): Uint8Array {
    return new Uint8Array(this.#payload("bytes"));
  }

  /**
   * A typed array over `length` elements of the payload from `byteOffset` (no copy).
   *
   * @throws {RangeError} When the view does not fit the payload or is misaligned.
   * @throws {SharedMemoryError} `closed` after close().
   */
  view<T>(type: TypedArrayConstructor<T>, byteOffset = 0, length?: number): T {
    const buffer = this.#payload("view");
    const elementBytes = type.BYTES_PER_ELEMENT;
    const count = length ?? Math.floor((this.payloadBytes - byteOffset) / elementBytes);
    const fits = Number.isSafeInteger(byteOffset) && byteOffset >= 0 &&
      Number.isSafeInteger(count) && count >= 0 &&
      byteOffset + count * elementBytes <= this.payloadBytes;
    if (!fits || byteOffset % elementBytes !== 0) {
      throw new RangeError(
        `Cannot view region ${this.name}: ${count} elements of ${elementBytes} bytes at byte ` +
          `${byteOffset} must fit its ${this.payloadBytes} bytes, aligned`,
      );
    }
    return new type(buffer, byteOffset, count);
  }

  /** The region's state and what this Region holds. */
  info(): RegionInfo {
    const functions = this.#bindings("info").functions;
    const words = new BigUint64Array(INFO_WORDS);
    const count = new Uint32Array(1);
    const status = functions.snakepit_region_info(
      this.#liveHandle("info"),
      words,
      INFO_WORDS,
      count,
    );
    if (status !== NativeStatus.ok) {
      throw this.#fail("info", status, `Cannot read region ${this.name}`);
    }
    return decodeRegionInfo(words);
  }

  /**
   * Adds a reference, held by this Region (and so by this process) until `release()` or
   * `close()`.
   *
   * @throws {SharedMemoryError} region_released, holder_table_full, closed.
   */
  retain(): void {
    const status = this.#bindings("retain").functions.snakepit_region_retain(
      this.#liveHandle("retain"),
    );
    if (status !== NativeStatus.ok) {
      throw this.#fail("retain", status, `Cannot retain region ${this.name}`);
    }
  }

  /**
   * Gives back a reference this Region holds. Returns true when it was the region's last: the
   * region was unlinked (this mapping stays valid until `close()`).
   *
   * @throws {SharedMemoryError} over_release when this Region holds no reference; closed.
   */
  release(): boolean {
    const unlinked = new Uint32Array(1);
    const record = new Uint32Array(NATIVE_ERROR_RECORD_WORDS);
    const status = this.#bindings("release").functions.snakepit_region_release(
      this.#liveHandle("release"),
      unlinked,
      record,
    );
    if (status !== NativeStatus.ok) {
      throw this.#fail("release", status, `Cannot release region ${this.name}`, record);
    }
    emitRegionEvent({
      kind: "release",
      name: this.name,
      payloadBytes: this.payloadBytes,
      unlinked: unlinked[0] === 1,
    });
    return unlinked[0] === 1;
  }

  /** Moves the region to its next generation (descriptors of older ones are refused). */
  bumpGeneration(): number {
    const generation = new BigUint64Array(1);
    const status = this.#bindings("bumpGeneration").functions.snakepit_region_bump_generation(
      this.#liveHandle("bumpGeneration"),
      generation,
    );
    if (status !== NativeStatus.ok) {
      throw this.#fail("bumpGeneration", status, `Cannot bump region ${this.name}`);
    }
    return Number(generation[0]);
  }

  /** Takes the shared lock if it is free now; `undefined` when a writer holds or claims it. */
  tryLockShared(): RegionLock | undefined {
    return this.#tryLock("shared", "tryLockShared");
  }

  /** Takes the exclusive lock if it is free now; `undefined` otherwise. */
  tryLockExclusive(): RegionLock | undefined {
    return this.#tryLock("exclusive", "tryLockExclusive");
  }

  /**
   * Takes the shared lock, waiting while a writer holds or claims it, without blocking the
   * event loop. Resolves to a lock whose `ownerDied` says whether a dead holder's lock was
   * recovered.
   *
   * @throws {SharedMemoryError} timed_out, closed; the signal's reason when aborted.
   */
  lockShared(options: LockOptions = {}): Promise<RegionLock> {
    return this.#lock("shared", "lockShared", options);
  }

  /**
   * Takes the exclusive lock: new readers stop at once, and it is granted when the readers
   * inside have left. Same promise and errors as {@link Region.lockShared}.
   */
  lockExclusive(options: LockOptions = {}): Promise<RegionLock> {
    return this.#lock("exclusive", "lockExclusive", options);
  }

  /**
   * Stores `value` into the `u32` at payload byte `wordOffset` (sequentially consistent). With
   * `parkedOffset`, clears that parked flag and, when a waiter had raised it, wakes the word's
   * waiters. Never blocks; allocates nothing (it runs once per call on the fast lane).
   *
   * @param wordOffset Payload byte offset of the word: a multiple of 4, inside the payload.
   * @param value The new value, 0 to 2^32 - 1.
   * @param parkedOffset Payload byte offset of the waiter's parked flag (see region_words.ts).
   * @returns True when the flag was raised, so a waiter was woken.
   * @throws {TypeError | RangeError} An offset or value out of range, naming it.
   * @throws {SharedMemoryError} closed.
   * @example
   * ```ts
   * import { openNativeLibrary, Region } from "./mod.ts";
   * const library = await openNativeLibrary();
   * using region = Region.create(library, { payloadBytes: 64, instance: "docs" });
   * console.log(region.publishWord(0, 1, 4)); // false: nobody was parked
   * console.log(region.waitWordSync(0, 0)); // { value: 1, timedOut: false }
   * ```
   */
  publishWord(wordOffset: number, value: number, parkedOffset?: number): boolean {
    return publishWord(this.#wordTarget, wordOffset, value, parkedOffset);
  }

  /**
   * Wakes every waiter on the `u32` at payload byte `wordOffset`, whatever its value.
   *
   * @throws {TypeError | RangeError} An offset out of range. {@link SharedMemoryError} closed.
   */
  wakeWord(wordOffset: number): void {
    wakeWord(this.#wordTarget, wordOffset);
  }

  /**
   * Waits, blocking this thread, until the `u32` at payload byte `wordOffset` differs from
   * `expected`: spins `options.spinNs`, then sleeps on a process-shared futex for up to
   * `options.timeoutNs` with the parked flag raised. For tests and worker threads; the event loop
   * should use {@link Region.waitWord}.
   *
   * @returns The word's value, and whether the timeout passed first.
   * @throws {TypeError | RangeError} An argument or option out of range, naming it.
   * @throws {SharedMemoryError} closed (also when closed during the wait from another thread).
   */
  waitWordSync(
    wordOffset: number,
    expected: number,
    options: WaitWordOptions = {},
  ): WaitWordResult {
    return waitWordSync(this.#wordTarget, wordOffset, expected, options);
  }

  /**
   * As {@link Region.waitWordSync}, without blocking the event loop: the wait runs on one of
   * Deno's FFI worker threads. Closing the Region ends it with a `closed` error.
   *
   * @throws {NativeLibraryError} `unsupported_runtime` under Bun, which has no nonblocking FFI
   *   calls (use waitWordSync in a Worker there).
   */
  waitWord(
    wordOffset: number,
    expected: number,
    options: WaitWordOptions = {},
  ): Promise<WaitWordResult> {
    return waitWord(this.#wordTarget, wordOffset, expected, options);
  }

  /**
   * Checks that an encoded descriptor names this region at its current generation and that
   * every element it reaches lies inside the payload; returns the payload bytes it covers.
   *
   * @throws {SharedMemoryError} descriptor_* statuses, generation_mismatch, closed.
   */
  checkDescriptor(bytes: Uint8Array): { firstByte: number; endByte: number } {
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError(`Cannot check a descriptor: bytes must be a Uint8Array`);
    }
    const extent = new BigUint64Array(2);
    const input = bytes.byteLength === 0 ? null : bytes;
    const status = this.#bindings("checkDescriptor").functions.snakepit_descriptor_check(
      this.#liveHandle("checkDescriptor"),
      input,
      bytes.byteLength,
      extent,
    );
    if (status !== NativeStatus.ok) {
      throw this.#fail(
        "checkDescriptor",
        status,
        `Cannot use a descriptor with region ${this.name}`,
      );
    }
    return { firstByte: Number(extent[0]), endByte: Number(extent[1]) };
  }

  /**
   * Detaches every view, gives back the locks and references this Region holds (unlinking the
   * region if that was its last reference) and unmaps it. Idempotent.
   */
  close(): void {
    const handle = this.#handle;
    if (handle === undefined) return;
    this.#handle = undefined;
    this.#unregister();
    // Detach first: views made from the buffer become empty instead of pointing at unmapped
    // memory. (ES2024 ArrayBuffer.prototype.transfer; both Bun and Deno detach external buffers.)
    const buffer = this.#buffer;
    this.#buffer = undefined;
    (buffer as { transfer?: (length: number) => ArrayBuffer } | undefined)?.transfer?.(0);
    // A wait still running on a Deno worker thread ends with handle_closed; the library
    // finalizes the handle when that call returns.
    this.#access.bindings("close").functions.snakepit_region_close(handle, null);
    emitRegionEvent({ kind: "close", name: this.name, payloadBytes: this.payloadBytes });
  }

  /** Same as {@link Region.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Same as {@link Region.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #tryLock(mode: LockMode, op: string): RegionLock | undefined {
    const status = tryAcquire(this.#lockTarget, mode, op);
    if (status === NativeStatus.would_block) return undefined;
    return this.#guard(mode, status);
  }

  async #lock(mode: LockMode, op: string, options: LockOptions): Promise<RegionLock> {
    this.#liveHandle(op);
    const status = await acquire(this.#lockTarget, mode, options, op);
    return this.#guard(mode, status);
  }

  #guard(mode: LockMode, status: number): RegionLock {
    const handle = this.#handle!;
    return new RegionLock(mode, status === NativeStatus.owner_dead, () => {
      if (this.#handle !== handle) return; // closing released it
      const released = this.#bindings("unlock").functions.snakepit_lock_release(
        handle,
        LOCK_MODE_CODES[mode],
      );
      if (released !== NativeStatus.ok) {
        throw this.#fail("unlock", released, `Cannot unlock region ${this.name}`);
      }
    });
  }

  #payload(op: string): ArrayBuffer {
    const handle = this.#liveHandle(op);
    if (this.#buffer !== undefined) return this.#buffer;
    const bindings = this.#bindings(op);
    const words = new BigUint64Array(2);
    const status = bindings.functions.snakepit_region_payload(
      handle,
      words.subarray(0, 1),
      words.subarray(1),
    );
    if (status !== NativeStatus.ok) throw this.#fail(op, status, `Cannot map region ${this.name}`);
    this.#buffer = bindings.arrayBufferAt(words[0], Number(words[1]));
    return this.#buffer;
  }

  #bindings(op: string): NativeBindings {
    return this.#access.bindings(op);
  }

  #liveHandle(op: string): number {
    if (this.#handle !== undefined) return this.#handle;
    throw new SharedMemoryError(
      `Cannot call ${op} on region ${this.name}: this Region is closed. Open the region again ` +
        "with Region.open() if it still exists.",
      { op, status: 0, statusName: "closed", path: this.#access.path, regionName: this.name },
    );
  }

  #fail(op: string, status: number, what: string, record?: Uint32Array): Error {
    if (status === NativeStatus.handle_closed || status === NativeStatus.invalid_handle) {
      if (this.#handle === undefined) return this.#closedError(op);
    }
    return errorFromStatus({
      op,
      status,
      record,
      path: this.#access.path,
      regionName: this.name,
      what,
    });
  }

  #closedError(op: string): SharedMemoryError {
    try {
      this.#liveHandle(op);
    } catch (error) {
      return error as SharedMemoryError;
    }
    throw new Error("unreachable: the Region is open");
  }
}
