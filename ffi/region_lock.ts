/**
 * Waiting for a region's lock without freezing the event loop, and the guard a lock returns.
 *
 * Every acquisition first tries once, synchronously (an uncontended lock costs one FFI call).
 * When the lock is busy:
 * - Deno calls `snakepit_lock_acquire` as a nonblocking symbol: the wait runs, with its real
 *   deadline, on one of Deno's worker threads, and the promise settles when the lock is taken.
 *   An AbortSignal ends it through `snakepit_lock_cancel`.
 * - Bun has no nonblocking FFI calls, so it polls with zero-timeout try-locks, sleeping between
 *   polls (0, 0, 1, 1, 2, 2, then 4 ms). A polling writer keeps its claim between polls (the
 *   keep-intent flag), so arriving readers cannot starve it.
 * bench/native_core.ts measures both (wake-up latency and event-loop lag); docs/native.md quotes
 * the numbers.
 *
 * @module
 */
import type { NativeBindings } from "./symbols.ts";
import { NativeStatus } from "./symbols.ts";

/** Shared (many readers) or exclusive (one writer). */
export type LockMode = "shared" | "exclusive";

/** Options of `Region.lockShared` and `Region.lockExclusive`. */
export interface LockOptions {
  /** Give up after this many milliseconds (a `timed_out` SharedMemoryError). Default: no limit. */
  timeoutMs?: number;
  /** Abort the wait; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * How to wait when the lock is busy: `"auto"` (default) waits on a worker thread where the
   * runtime can (Deno) and polls elsewhere (Bun); `"poll"` always polls.
   */
  waitStrategy?: "auto" | "poll";
}

/** What the lock functions need from the Region that calls them. */
export interface LockTarget {
  readonly bindings: NativeBindings;
  readonly handle: number;
  /** Keeps the library loaded while a nonblocking call runs (see NativeAccess.track). */
  track<T>(call: Promise<T>): Promise<T>;
  /** Throws the Region's `closed` error once it is closed. */
  checkOpen(op: string): void;
  /** Turns a failed status into the error to throw. */
  fail(op: string, status: number): Error;
}

/** The native mode codes. */
export const LOCK_MODE_CODES: Record<LockMode, number> = { shared: 0, exclusive: 1 };
const KEEP_INTENT = 1;
const NO_DEADLINE = 0xffff_ffff_ffff_ffffn;
const POLL_DELAYS_MS = [0, 0, 1, 1, 2, 2, 4] as const;
const CANCEL_RETRY_MS = 5;

function isAcquired(status: number): boolean {
  return status === NativeStatus.ok || status === NativeStatus.owner_dead;
}

/** Validates lock options; argument mistakes throw TypeError / RangeError. */
export function checkLockOptions(options: LockOptions, action: string): number {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Cannot ${action}: options must be an object, received ${options}`);
  }
  const { timeoutMs = Infinity, signal, waitStrategy = "auto" } = options;
  if (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(
      `Cannot ${action}: options.timeoutMs must be a number >= 0, received ${timeoutMs}`,
    );
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`Cannot ${action}: options.signal must be an AbortSignal`);
  }
  if (waitStrategy !== "auto" && waitStrategy !== "poll") {
    throw new RangeError(
      `Cannot ${action}: options.waitStrategy must be "auto" or "poll", received ${waitStrategy}`,
    );
  }
  return timeoutMs;
}

/** Tries once; returns the status (ok, owner_dead, or would_block) or throws another failure. */
export function tryAcquire(target: LockTarget, mode: LockMode, op: string): number {
  target.checkOpen(op);
  const status = target.bindings.functions.snakepit_lock_acquire(
    target.handle,
    LOCK_MODE_CODES[mode],
    0n,
    0,
  );
  if (isAcquired(status) || status === NativeStatus.would_block) return status;
  throw target.fail(op, status);
}

/** Waits for the lock as {@link LockOptions} say; resolves to ok or owner_dead. */
export async function acquire(
  target: LockTarget,
  mode: LockMode,
  options: LockOptions,
  op: string,
): Promise<number> {
  const timeoutMs = checkLockOptions(options, op);
  options.signal?.throwIfAborted();
  const first = tryAcquire(target, mode, op);
  if (isAcquired(first)) return first;
  if (timeoutMs === 0) throw target.fail(op, NativeStatus.timed_out);
  const nonblocking = target.bindings.nonblocking;
  if (nonblocking !== undefined && options.waitStrategy !== "poll") {
    return await waitOnWorkerThread(target, mode, timeoutMs, options.signal, op);
  }
  return await poll(target, mode, timeoutMs, options.signal, op);
}

async function waitOnWorkerThread(
  target: LockTarget,
  mode: LockMode,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  op: string,
): Promise<number> {
  const timeoutNs = timeoutMs === Infinity ? NO_DEADLINE : BigInt(Math.ceil(timeoutMs * 1e6));
  const functions = target.bindings.functions;
  const pending = target.track(target.bindings.nonblocking!.snakepit_lock_acquire(
    target.handle,
    LOCK_MODE_CODES[mode],
    timeoutNs,
    0,
  ));
  // A cancel only ends a wait that has begun on the worker thread, so it is repeated until the
  // promise settles.
  let cancelTimer: ReturnType<typeof setInterval> | undefined;
  const onAbort = () => {
    const cancel = () => functions.snakepit_lock_cancel(target.handle);
    cancel();
    cancelTimer = setInterval(cancel, CANCEL_RETRY_MS);
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  let status: number;
  try {
    status = await pending;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (cancelTimer !== undefined) clearInterval(cancelTimer);
  }
  return settle(target, mode, status, signal, op);
}

async function poll(
  target: LockTarget,
  mode: LockMode,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  op: string,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  const flags = mode === "exclusive" ? KEEP_INTENT : 0;
  const functions = target.bindings.functions;
  const withdraw = () => functions.snakepit_lock_cancel(target.handle);
  for (let attempt = 0;; attempt += 1) {
    const remaining = deadline - performance.now();
    const delay = POLL_DELAYS_MS[Math.min(attempt, POLL_DELAYS_MS.length - 1)];
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(delay, remaining))));
    if (signal?.aborted) {
      withdraw();
      throw signal.reason;
    }
    target.checkOpen(op);
    const status = functions.snakepit_lock_acquire(target.handle, LOCK_MODE_CODES[mode], 0n, flags);
    if (isAcquired(status)) return status;
    if (status !== NativeStatus.would_block) {
      withdraw();
      throw target.fail(op, status);
    }
    if (performance.now() >= deadline) {
      withdraw();
      throw target.fail(op, NativeStatus.timed_out);
    }
  }
}

function settle(
  target: LockTarget,
  mode: LockMode,
  status: number,
  signal: AbortSignal | undefined,
  op: string,
): number {
  if (signal?.aborted) {
    // Aborted, but the lock may have been taken just before the cancel: give it back.
    if (isAcquired(status)) {
      target.bindings.functions.snakepit_lock_release(target.handle, LOCK_MODE_CODES[mode]);
    }
    throw signal.reason;
  }
  // Closing the Region meanwhile gave back whatever this wait took: report it closed.
  target.checkOpen(op);
  if (isAcquired(status)) return status;
  throw target.fail(op, status);
}

/**
 * A held lock. Release it with {@link RegionLock.release} or `using` (`[Symbol.dispose]`);
 * closing the Region releases it too.
 */
export class RegionLock implements Disposable {
  /** The mode it is held in. */
  readonly mode: LockMode;
  /**
   * True when the previous holder died holding the lock and this acquisition recovered it: the
   * data it guards may be half-written. Check it, repair or discard, then carry on.
   */
  readonly ownerDied: boolean;
  #release: (() => void) | undefined;

  /** @internal Made by Region's lock methods. */
  constructor(mode: LockMode, ownerDied: boolean, release: () => void) {
    this.mode = mode;
    this.ownerDied = ownerDied;
    this.#release = release;
  }

  /** Whether it was released. */
  get released(): boolean {
    return this.#release === undefined;
  }

  /** Releases the lock. Idempotent; a no-op once the Region is closed (closing released it). */
  release(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  /** Same as {@link RegionLock.release}, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }
}
