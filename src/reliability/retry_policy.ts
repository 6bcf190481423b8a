/**
 * Retry policy: how many attempts, how long to wait between them (exponential back-off with full
 * jitter and a cap), and which failures are worth retrying, decided from the error's class.
 *
 * @module
 */
import { z } from "zod";
import { type ErrorCode, SnakepitError } from "../errors/snakepit_error.ts";
import { ERROR_CODES, mayHaveRun } from "./failure_codes.ts";
import { callable, durationMs, integer, parseOptions, requireOrder } from "./_parse_options.ts";

/** Most attempts one call may make. */
export const RETRY_ATTEMPTS_MAX = 100;

/** Options of a `RetryPolicy`. */
export interface RetryOptions {
  /** Attempts in all, the first included. Default 3; 1 (no retry) to 100. */
  attempts?: number;
  /** Back-off before the first retry, before jitter. Default 100 ms; 0 to 2^31-1. */
  initialDelayMs?: number;
  /** Cap on the back-off. Default 5000 ms; at least `initialDelayMs`. */
  maxDelayMs?: number;
  /** Growth of the back-off per retry. Default 2; 1 to 10. */
  multiplier?: number;
  /**
   * `"full"` (default): each delay is uniform in [0, back-off], which spreads retries of many
   * callers apart; `"none"`: exactly the back-off.
   */
  jitter?: "full" | "none";
  /**
   * Codes worth retrying. Default: every error whose class says `retryable` (saturated, queue
   * timeout, worker busy, circuit open, timeout, worker crashed, transport, and Python's
   * `TimeoutError` / `ConnectionError`).
   */
  retryOn?: readonly ErrorCode[];
  /** Source of randomness for the jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** Why a failed attempt is retried or not. */
export type RetryDecision =
  | { retry: true; delayMs: number }
  | { retry: false; reason: "not_snakepit_error" | "not_retryable" | "not_idempotent" | "attempts_exhausted" };

const retryOptionsSchema = z.object({
  attempts: integer(1, RETRY_ATTEMPTS_MAX).default(3),
  initialDelayMs: durationMs(0).default(100),
  maxDelayMs: durationMs(0).default(5_000),
  multiplier: z.number({ invalid_type_error: "must be a number" })
    .min(1, { message: "must be from 1 to 10" }).max(10, { message: "must be from 1 to 10" }).default(2),
  jitter: z.enum(["full", "none"], { message: 'must be "full" or "none"' }).default("full"),
  retryOn: z.array(z.enum(ERROR_CODES, { message: "must list error codes" }), {
    invalid_type_error: "must be an array of error codes",
  }).optional(),
  random: callable<() => number>().default(() => Math.random),
}).strict();

/**
 * Decides whether and when a failed attempt is retried.
 *
 * The rules, in order: only `SnakepitError`s are retried (an argument `TypeError`, an abort
 * reason, are not); the error's code must be retryable (its class's `retryable`, or listed in
 * `retryOn`); a failure that may have run the tool on a worker (a crash, a timeout, a transport
 * failure, a Python exception) is retried only when the caller marked the call idempotent, while
 * one refused before dispatch (saturated, queue timeout, worker busy, circuit open, worker start)
 * is always safe to retry; and never past `attempts`.
 *
 * @example
 * ```ts
 * import { RetryPolicy, WorkerCrashedError } from "@snakepit/snakepit";
 * const policy = new RetryPolicy({ attempts: 3, initialDelayMs: 100, jitter: "none" });
 * const crash = new WorkerCrashedError("died", {
 *   workerId: "w0",
 *   exit: { exitCode: null, signal: "SIGKILL", classification: "killed", stderrTail: "" },
 * });
 * console.log(policy.decide(crash, 1, true)); // { retry: true, delayMs: 100 }
 * console.log(policy.decide(crash, 1, false).retry); // false
 * ```
 */
export class RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  readonly jitter: "full" | "none";
  readonly #retryOn: ReadonlySet<string> | undefined;
  readonly #random: () => number;

  /**
   * @param options see `RetryOptions`
   * @param validation how validation errors name the action and the options object (internal:
   *   the executor validates per-call retry options as `options.retry`)
   * @throws TypeError | RangeError naming a malformed option and the value received
   */
  constructor(options: RetryOptions = {}, validation: { action: string; root: string } = { action: "create retry policy", root: "options" }) {
    const parsed = parseOptions(retryOptionsSchema, options, validation.action, validation.root);
    requireOrder(options, parsed, "initialDelayMs", "maxDelayMs", validation.action, validation.root);
    this.attempts = parsed.attempts;
    this.initialDelayMs = parsed.initialDelayMs;
    this.maxDelayMs = parsed.maxDelayMs;
    this.multiplier = parsed.multiplier;
    this.jitter = parsed.jitter;
    this.#retryOn = parsed.retryOn === undefined ? undefined : new Set(parsed.retryOn);
    this.#random = parsed.random;
  }

  /** The back-off before retry number `retry` (1 for the first retry), before jitter, capped. */
  backoffMs(retry: number): number {
    const exponent = Math.max(0, Math.floor(retry) - 1);
    return Math.min(this.maxDelayMs, this.initialDelayMs * this.multiplier ** exponent);
  }

  /** The delay before retry number `retry`, jitter applied: whole milliseconds. */
  delayMs(retry: number): number {
    const backoff = this.backoffMs(retry);
    if (this.jitter === "none") return Math.round(backoff);
    // A random source outside [0, 1) must not produce a negative or oversized delay.
    const sample = Math.min(Math.max(Number(this.#random()) || 0, 0), 1);
    return Math.floor(sample * backoff);
  }

  /** Whether `error`'s class (or `retryOn`) makes it worth another attempt, idempotency aside. */
  isRetryable(error: SnakepitError): boolean {
    return this.#retryOn === undefined ? error.retryable : this.#retryOn.has(error.code);
  }

  /**
   * Decides about a failed attempt.
   *
   * @param error what the attempt threw
   * @param attemptsMade attempts made so far, the failed one included (1 after the first)
   * @param idempotent whether running the tool twice is harmless
   */
  decide(error: unknown, attemptsMade: number, idempotent: boolean): RetryDecision {
    if (!(error instanceof SnakepitError)) return { retry: false, reason: "not_snakepit_error" };
    if (!this.isRetryable(error)) return { retry: false, reason: "not_retryable" };
    if (!idempotent && mayHaveRun(error)) return { retry: false, reason: "not_idempotent" };
    if (attemptsMade >= this.attempts) return { retry: false, reason: "attempts_exhausted" };
    return { retry: true, delayMs: this.delayMs(attemptsMade) };
  }
}
