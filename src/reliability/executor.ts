/**
 * The executor composes the crash barrier around one call: a deadline over all attempts, the
 * retry policy, the circuit breaker and the health monitor. `pool.call` uses it when its options
 * ask for retries; it works around any `attempt(signal, attempt) => Promise`.
 *
 * @module
 */
import { z } from "zod";
import { CallTimeoutError } from "../errors/pool_errors.ts";
import type { SnakepitError } from "../errors/snakepit_error.ts";
import { CircuitBreaker } from "./circuit_breaker.ts";
import { HealthMonitor } from "./health_monitor.ts";
import { type RetryOptions, RetryPolicy } from "./retry_policy.ts";
import { Listeners } from "./_listeners.ts";
import { durationMs, parseOptions } from "./_parse_options.ts";

/** One attempt: run the call, honouring `signal` (aborted on the deadline or by the caller). */
export type Attempt<T> = (signal: AbortSignal, attempt: number) => Promise<T>;

/** Options of an `Executor`: what every call it runs shares. */
export interface ExecutorOptions {
  /** Name in events. Default `"default"`. */
  name?: string;
  /** Retry policy of calls that do not bring their own. Default `RetryPolicy` defaults (3 attempts). */
  retry?: RetryOptions;
  /** Circuit breaker shared by the calls (one per pool, or per pool and device). Default none. */
  breaker?: CircuitBreaker;
  /** Health monitor fed with every attempt's outcome. Default none. */
  health?: HealthMonitor;
  /** Deadline of a call over all its attempts and back-offs. Default none; 1 to 2^31-1 ms. */
  deadlineMs?: number;
}

/** Options of one `run`. */
export interface RunOptions {
  /**
   * Whether running the call twice is harmless. Default false: a call that may have reached a
   * worker (crash, timeout, Python exception) is then never retried; a call refused before
   * dispatch (saturated, circuit open, ...) still is.
   */
  idempotent?: boolean;
  /** Cancels the call: the current attempt's signal aborts and `run` rejects with the reason. */
  signal?: AbortSignal;
  /** Deadline over all attempts, overriding the executor's. */
  deadlineMs?: number;
  /**
   * This call's retry options, each overriding the executor's (`{ attempts: 5 }` keeps the
   * executor's delays); `false` for a single attempt.
   */
  retry?: RetryOptions | false;
  /** What the call is, in messages and events (a tool name). Default `"call"`. */
  label?: string;
}

/** Events of an `Executor`. */
export interface ExecutorEvents {
  /** An attempt failed and another follows after `delayMs`. */
  retry: { executor: string; label: string; attempt: number; delayMs: number; error: SnakepitError };
}

const executorOptionsSchema = z.object({
  name: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must be 1-64 characters" })
    .max(64, { message: "must be 1-64 characters" }).default("default"),
  retry: z.record(z.unknown(), { invalid_type_error: "must be an object of retry options" }).optional(),
  breaker: z.instanceof(CircuitBreaker, { message: "must be a CircuitBreaker" }).optional(),
  health: z.instanceof(HealthMonitor, { message: "must be a HealthMonitor" }).optional(),
  deadlineMs: durationMs(1).optional(),
}).strict();

const runOptionsSchema = z.object({
  idempotent: z.boolean({ invalid_type_error: "must be a boolean" }).default(false),
  signal: z.custom<AbortSignal>((value) => value instanceof AbortSignal, { message: "must be an AbortSignal" }).optional(),
  deadlineMs: durationMs(1).optional(),
  retry: z.union([z.literal(false), z.record(z.unknown())], { errorMap: () => ({ message: "must be retry options or false" }) })
    .optional(),
  label: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must be 1-256 characters" })
    .max(256, { message: "must be 1-256 characters" }).default("call"),
}).strict();

const SINGLE_ATTEMPT = new RetryPolicy({ attempts: 1 });

/**
 * Runs calls through deadline, retry, circuit breaker and health monitor.
 *
 * For each attempt: the breaker is consulted (an open circuit rejects at once with
 * `CircuitOpenError`); the attempt runs with a signal that aborts on the caller's signal or the
 * deadline (a `CallTimeoutError`); its outcome is reported to the breaker and the monitor; a
 * failure is retried when the policy says so (see `RetryPolicy.decide`) and the back-off still
 * ends before the deadline. The last failure is rethrown unchanged, so `instanceof` works.
 *
 * @example
 * ```ts
 * import { Executor, Pool } from "@snakepit/snakepit";
 * await using pool = await Pool.start({ adapter: "snakepit_bridge.examples.numeric:NumericAdapter", workerLogs: "silent" });
 * const executor = new Executor({ retry: { attempts: 3 }, deadlineMs: 10_000 });
 * const sum = await executor.run((signal) => pool.call("add", { a: 1, b: 2 }, { signal }), { idempotent: true, label: "add" });
 * console.log(sum); // 3
 * ```
 */
export class Executor {
  /** The executor's name. */
  readonly name: string;
  /** The circuit breaker, when one was given. */
  readonly breaker: CircuitBreaker | undefined;
  /** The health monitor, when one was given. */
  readonly health: HealthMonitor | undefined;
  /** The default retry policy. */
  readonly retryPolicy: RetryPolicy;
  readonly #deadlineMs: number | undefined;
  readonly #retryOptions: RetryOptions;
  readonly #listeners = new Listeners<ExecutorEvents>("executor", ["retry"]);

  /**
   * @throws TypeError | RangeError naming a malformed option and the value received
   */
  constructor(options: ExecutorOptions = {}) {
    const parsed = parseOptions(executorOptionsSchema, options, "create executor");
    this.name = parsed.name;
    this.breaker = parsed.breaker;
    this.health = parsed.health;
    this.#deadlineMs = parsed.deadlineMs;
    this.#retryOptions = (parsed.retry ?? {}) as RetryOptions;
    this.retryPolicy = new RetryPolicy(this.#retryOptions, { action: "create executor", root: "options.retry" });
  }

  /** Subscribes to `"retry"`; returns the function that unsubscribes. */
  on<K extends keyof ExecutorEvents>(name: K, listener: (event: ExecutorEvents[K]) => void): () => void {
    return this.#listeners.on(name, listener);
  }

  /**
   * Runs `attempt` until it succeeds or the policy, the deadline, the breaker or the caller stops it.
   *
   * @param attempt makes one attempt; must honour its `signal`
   * @param options idempotency, signal, deadline, retry override, label
   * @returns the first successful attempt's value
   * @throws the last attempt's error; `CircuitOpenError` when the circuit is open;
   *   `CallTimeoutError` past the deadline; `signal.reason` when the caller aborts;
   *   TypeError | RangeError for malformed options
   */
  async run<T>(attempt: Attempt<T>, options: RunOptions = {}): Promise<T> {
    const label = typeof options?.label === "string" && options.label ? options.label : "call";
    if (typeof attempt !== "function") {
      throw new TypeError(`Cannot run "${label}": attempt must be a function (signal, attempt) => Promise, received ${typeof attempt}`);
    }
    const action = `run "${label}"`;
    const run = parseOptions(runOptionsSchema, options, action);
    const policy = run.retry === false
      ? SINGLE_ATTEMPT
      : run.retry === undefined
      ? this.retryPolicy
      : new RetryPolicy({ ...this.#retryOptions, ...run.retry as RetryOptions }, { action, root: "options.retry" });
    const deadlineMs = run.deadlineMs ?? this.#deadlineMs;
    const deadlineAt = deadlineMs === undefined ? Infinity : Date.now() + deadlineMs;
    run.signal?.throwIfAborted();
    for (let number = 1;; number += 1) {
      const permit = this.breaker?.acquire();
      const deadline = { error: undefined as CallTimeoutError | undefined };
      try {
        const value = await attemptOnce(attempt, number, run.signal, deadlineAt, () => {
          deadline.error = new CallTimeoutError(`Call "${run.label}" ran past its ${deadlineMs} ms deadline during attempt ${number}`, {
            timeoutMs: deadlineMs!,
          });
          return deadline.error;
        });
        permit?.success();
        this.health?.recordSuccess();
        return value;
      } catch (error) {
        if (run.signal?.aborted) {
          permit?.release();
          throw run.signal.reason;
        }
        permit?.failure(error);
        this.health?.recordFailure(error);
        if (deadline.error !== undefined && error === deadline.error) throw error;
        const decision = policy.decide(error, number, run.idempotent);
        if (!decision.retry || Date.now() + decision.delayMs >= deadlineAt) throw error;
        this.#listeners.emit("retry", { executor: this.name, label: run.label, attempt: number, delayMs: decision.delayMs, error: error as SnakepitError });
        await delay(decision.delayMs, run.signal);
      }
    }
  }
}

/**
 * Runs one call through a one-off executor (no breaker or monitor unless given).
 *
 * @example
 * ```ts
 * import { execute } from "@snakepit/snakepit";
 * console.log(await execute(async () => 42, { idempotent: true })); // 42
 * ```
 */
export function execute<T>(attempt: Attempt<T>, options: ExecutorOptions & RunOptions = {}): Promise<T> {
  const { name, breaker, health, ...run } = options ?? {};
  const executor = new Executor({ name, breaker, health });
  return executor.run(attempt, run);
}

// One attempt under a signal that aborts with the caller's reason or, at `deadlineAt`, with the
// deadline error. The attempt's promise is raced against that signal, so an attempt that ignores
// its signal cannot hold the caller past the deadline.
async function attemptOnce<T>(
  attempt: Attempt<T>,
  number: number,
  signal: AbortSignal | undefined,
  deadlineAt: number,
  deadlineError: () => CallTimeoutError,
): Promise<T> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal!.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  const timer = deadlineAt === Infinity
    ? undefined
    : setTimeout(() => controller.abort(deadlineError()), Math.max(0, deadlineAt - Date.now()));
  let onAborted = () => {};
  try {
    const running = new Promise<T>((resolve) => resolve(attempt(controller.signal, number)));
    // The race may be lost to the signal; the attempt's own rejection must not go unhandled.
    running.catch(() => {});
    const aborted = new Promise<never>((_, reject) => {
      onAborted = () => reject(controller.signal.reason);
      controller.signal.addEventListener("abort", onAborted, { once: true });
    });
    aborted.catch(() => {});
    return await Promise.race([running, aborted]);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    controller.signal.removeEventListener("abort", onAborted);
  }
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
