/**
 * Futex words in a region's payload: the doorbells of a shared-memory ring. A consumer waits for
 * a `u32` word to move off the value it last saw; a producer publishes a new value and wakes the
 * consumer only when the consumer's optional "parked" flag (another `u32` of the payload) says
 * it is asleep, so a producer whose consumer is awake makes no system call.
 *
 * Offsets are payload byte offsets, multiples of 4 with `offset + 4 <= payloadBytes`; a parked
 * flag is one waiter's own and never the word itself. `zig/words.zig` explains why no wake-up is
 * lost.
 *
 * Waiting blocks the calling thread in native code: `Region.waitWordSync` does so (for tests and
 * worker threads); `Region.waitWord` runs the wait on one of Deno's FFI worker threads and
 * returns a promise. Bun has no nonblocking FFI calls, so there `waitWord` rejects with an
 * `unsupported_runtime` NativeLibraryError rather than polling: a poll would add milliseconds to
 * a path meant to take microseconds. Under Bun, call `waitWordSync` from a `Worker`.
 *
 * A wait ends when the word changes, when its timeout passes, or when the Region is closed (with
 * a `closed` error, within one native sleep slice, under a second). It takes no AbortSignal:
 * the native wait has no cancellation of its own; give it a timeout, or close the Region.
 *
 * @module
 */
import { NativeLibraryError } from "./native_library_error.ts";
import type { NativeBindings } from "./symbols.ts";
import { NativeStatus } from "./symbols.ts";

/** The longest spin a wait accepts, in nanoseconds (1 s). */
export const WORD_SPIN_NS_MAX = 1_000_000_000;

/** Options of `Region.waitWordSync` and `Region.waitWord`. */
export interface WaitWordOptions {
  /**
   * Payload byte offset of this waiter's parked flag: raised while it sleeps, so that
   * `publishWord` with the same flag wakes it (and only then makes a system call). A multiple
   * of 4 inside the payload, not the word itself. Default: no flag (publishers must `wakeWord`).
   */
  parkedOffset?: number;
  /** Spin this many nanoseconds before sleeping, 0 to {@link WORD_SPIN_NS_MAX}. Default 0. */
  spinNs?: number;
  /**
   * Sleep at most this many nanoseconds after the spin: an integer >= 0, or `Infinity` for no
   * limit; 0 never sleeps. Default `Infinity`.
   */
  timeoutNs?: number;
}

/** How a word wait ended. */
export interface WaitWordResult {
  /** The word's last value: the new one, or (when `timedOut`) the unchanged one. */
  value: number;
  /** True when the timeout passed with the word still at `expected`. */
  timedOut: boolean;
}

/** What the word functions need from the Region that calls them. */
export interface WordTarget {
  readonly name: string;
  readonly payloadBytes: number;
  readonly path: string;
  /** The bindings, or the Region's `closed` error (and the library's once it is closed). */
  bindings(op: string): NativeBindings;
  /** The live handle, or the Region's `closed` error. */
  handle(op: string): number;
  /** Keeps the library loaded while a nonblocking call runs (see NativeAccess.track). */
  track<T>(call: Promise<T>): Promise<T>;
  /** Turns a failed status into the error to throw. */
  fail(op: string, status: number): Error;
}

const NO_PARKED_FLAG = 0xffff_ffff_ffff_ffffn;
const NO_DEADLINE = 0xffff_ffff_ffff_ffffn;
const U32_MAX = 0xffff_ffff;
// Calls are synchronous and JS is single-threaded (a Worker has its own module instance), so one
// out-buffer serves every call: publishWord runs once per RPC and must not allocate.
const wasParkedOut = new Uint32Array(1);
const valueOut = new Uint32Array(1);

/** Stores `value` into the word; returns whether the parked flag was raised (the waiter woken). */
export function publishWord(
  target: WordTarget,
  wordOffset: number,
  value: number,
  parkedOffset: number | undefined,
): boolean {
  const op = "publishWord";
  const handle = target.handle(op);
  const word = offsetArgument(target, op, "wordOffset", wordOffset);
  const parked = parkedArgument(target, op, "parkedOffset", parkedOffset, wordOffset);
  u32Argument(target, op, "value", value);
  const functions = target.bindings(op).functions;
  const status = functions.snakepit_region_publish_word(handle, word, value, parked, wasParkedOut);
  if (status !== NativeStatus.ok) throw target.fail(op, status);
  return wasParkedOut[0] !== 0;
}

/** Wakes every waiter on the word. */
export function wakeWord(target: WordTarget, wordOffset: number): void {
  const op = "wakeWord";
  const handle = target.handle(op);
  const word = offsetArgument(target, op, "wordOffset", wordOffset);
  const status = target.bindings(op).functions.snakepit_region_wake_word(handle, word);
  if (status !== NativeStatus.ok) throw target.fail(op, status);
}

/** Waits on this thread until the word differs from `expected` or the timeout passes. */
export function waitWordSync(
  target: WordTarget,
  wordOffset: number,
  expected: number,
  options: WaitWordOptions,
): WaitWordResult {
  const op = "waitWordSync";
  const handle = target.handle(op);
  const [word, parked, spin, timeout] = waitArguments(target, op, wordOffset, expected, options);
  const functions = target.bindings(op).functions;
  const status = functions.snakepit_region_wait_word(
    handle,
    word,
    expected,
    parked,
    spin,
    timeout,
    valueOut,
  );
  return waitResult(target, op, status, valueOut[0]);
}

/** As {@link waitWordSync}, on one of Deno's FFI worker threads; rejects under Bun. */
export async function waitWord(
  target: WordTarget,
  wordOffset: number,
  expected: number,
  options: WaitWordOptions,
): Promise<WaitWordResult> {
  const op = "waitWord";
  const handle = target.handle(op);
  const [word, parked, spin, timeout] = waitArguments(target, op, wordOffset, expected, options);
  const bindings = target.bindings(op);
  if (bindings.nonblocking === undefined) {
    throw new NativeLibraryError(
      `Cannot waitWord on region ${target.name}: nonblocking native waits need Deno, and this ` +
        `runtime (${bindings.runtime}) has no nonblocking FFI calls. Call waitWordSync() from a ` +
        "Worker instead, or run under Deno.",
      { op, status: 0, statusName: "unsupported_runtime", path: target.path },
    );
  }
  // Each pending wait needs its own out-buffer: several may run at once on worker threads.
  const out = new Uint32Array(1);
  const status = await target.track(
    bindings.nonblocking.snakepit_region_wait_word(
      handle,
      word,
      expected,
      parked,
      spin,
      timeout,
      out,
    ),
  );
  return waitResult(target, op, status, out[0]);
}

function waitResult(target: WordTarget, op: string, status: number, value: number): WaitWordResult {
  if (status === NativeStatus.ok) return { value, timedOut: false };
  if (status === NativeStatus.timed_out) return { value, timedOut: true };
  throw target.fail(op, status);
}

function waitArguments(
  target: WordTarget,
  op: string,
  wordOffset: number,
  expected: number,
  options: WaitWordOptions,
): [word: bigint, parked: bigint, spinNs: bigint, timeoutNs: bigint] {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot ${op} on region ${target.name}: options must be an object, received ${options}`,
    );
  }
  const { parkedOffset, spinNs = 0, timeoutNs = Infinity } = options;
  const word = offsetArgument(target, op, "wordOffset", wordOffset);
  u32Argument(target, op, "expected", expected);
  const parked = parkedArgument(target, op, "options.parkedOffset", parkedOffset, wordOffset);
  if (!Number.isSafeInteger(spinNs) || spinNs < 0 || spinNs > WORD_SPIN_NS_MAX) {
    throw new RangeError(
      `Cannot ${op} on region ${target.name}: options.spinNs must be an integer from 0 to ` +
        `${WORD_SPIN_NS_MAX}, received ${spinNs}`,
    );
  }
  const forever = timeoutNs === Infinity;
  if (!forever && (!Number.isSafeInteger(timeoutNs) || timeoutNs < 0)) {
    throw new RangeError(
      `Cannot ${op} on region ${target.name}: options.timeoutNs must be an integer >= 0 or ` +
        `Infinity, received ${timeoutNs}`,
    );
  }
  return [word, parked, BigInt(spinNs), forever ? NO_DEADLINE : BigInt(timeoutNs)];
}

function offsetArgument(target: WordTarget, op: string, name: string, offset: number): bigint {
  if (typeof offset !== "number") {
    throw new TypeError(
      `Cannot ${op} on region ${target.name}: ${name} must be a number, received ${typeof offset}`,
    );
  }
  if (
    !Number.isSafeInteger(offset) || offset < 0 || offset % 4 !== 0 ||
    offset + 4 > target.payloadBytes
  ) {
    throw new RangeError(
      `Cannot ${op} on region ${target.name}: ${name} must be a multiple of 4 from 0 to ` +
        `${
          target.payloadBytes - 4
        } (the payload is ${target.payloadBytes} bytes), received ${offset}`,
    );
  }
  return BigInt(offset);
}

function parkedArgument(
  target: WordTarget,
  op: string,
  name: string,
  parkedOffset: number | undefined,
  wordOffset: number,
): bigint {
  if (parkedOffset === undefined) return NO_PARKED_FLAG;
  const parked = offsetArgument(target, op, name, parkedOffset);
  if (parkedOffset === wordOffset) {
    throw new RangeError(
      `Cannot ${op} on region ${target.name}: ${name} must differ from wordOffset, received ` +
        `${parkedOffset} for both`,
    );
  }
  return parked;
}

function u32Argument(target: WordTarget, op: string, name: string, value: number): void {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${op} on region ${target.name}: ${name} must be a number, received ${typeof value}`,
    );
  }
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX) {
    throw new RangeError(
      `Cannot ${op} on region ${target.name}: ${name} must be an integer from 0 to ${U32_MAX}, ` +
        `received ${value}`,
    );
  }
}
