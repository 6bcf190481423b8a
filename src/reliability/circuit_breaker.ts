/**
 * Circuit breaker: after `failureThreshold` consecutive failures (crashes, timeouts, device
 * failures; decided by error code) the circuit opens and calls fail at once with
 * `CircuitOpenError`; after `openMs` it half-opens and lets trial calls through; their success
 * closes it, a failure opens it again.
 *
 * @module
 */
import { z } from "zod";
import { CircuitOpenError } from "../errors/reliability_errors.ts";
import type { ErrorCode } from "../errors/snakepit_error.ts";
import { codeOf, DEFAULT_FAILURE_CODES, ERROR_CODES, outcomeOf } from "./failure_codes.ts";
import { Listeners } from "./_listeners.ts";
import { callable, durationMs, integer, parseOptions } from "./_parse_options.ts";

/** The breaker's state. */
export type CircuitState = "closed" | "open" | "half_open";

/** Options of a `CircuitBreaker`. */
export interface CircuitBreakerOptions {
  /** Name in errors and events (the pool's, or pool and device). Default `"default"`; 1-64 chars. */
  name?: string;
  /** Consecutive failures that open the circuit. Default 5; 1 to 10000. */
  failureThreshold?: number;
  /** Successful trial calls in a row that close a half-open circuit. Default 1; 1 to 10000. */
  successThreshold?: number;
  /** How long the circuit stays open before a trial call is let through. Default 30000 ms. */
  openMs?: number;
  /** Trial calls allowed at once while half-open. Default 1; 1 to 10000. */
  halfOpenMaxCalls?: number;
  /** Error codes that count as failures. Default `DEFAULT_FAILURE_CODES`. */
  failureCodes?: readonly ErrorCode[];
  /** Milliseconds now (inject a fake clock in tests). Default `Date.now`. */
  clock?: () => number;
}

/** Why the state changed. */
export type CircuitChangeReason = "failure_threshold" | "open_period_elapsed" | "trial_failed" | "trials_succeeded" | "reset";

/** The `"state-change"` event. */
export interface CircuitStateChange {
  circuit: string;
  from: CircuitState;
  to: CircuitState;
  reason: CircuitChangeReason;
  /** Clock time of the change. */
  at: number;
  /** Consecutive failures counted when the change happened. */
  consecutiveFailures: number;
}

/** Events of a `CircuitBreaker`. */
export interface CircuitBreakerEvents {
  "state-change": CircuitStateChange;
}

/** A reservation to make one call; settle it exactly once (later settlements are ignored). */
export interface CircuitPermit {
  /** The call succeeded. */
  success(): void;
  /** The call failed with `error`; whether that counts as a failure depends on its code. */
  failure(error: unknown): void;
  /** The call ended without saying anything about the pool (the caller cancelled it). */
  release(): void;
}

/** The breaker's counters, for health endpoints and logs. */
export interface CircuitSnapshot {
  name: string;
  state: CircuitState;
  consecutiveFailures: number;
  trialsInFlight: number;
  /** Clock time the circuit last opened, or null. */
  openedAt: number | null;
  /** Milliseconds until a trial call is let through (0 unless open). */
  retryAfterMs: number;
}

const breakerOptionsSchema = z.object({
  name: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must be 1-64 characters" })
    .max(64, { message: "must be 1-64 characters" }).default("default"),
  failureThreshold: integer(1, 10_000).default(5),
  successThreshold: integer(1, 10_000).default(1),
  openMs: durationMs(1).default(30_000),
  halfOpenMaxCalls: integer(1, 10_000).default(1),
  failureCodes: z.array(z.enum(ERROR_CODES, { message: "must list error codes" }), {
    invalid_type_error: "must be an array of error codes",
  }).default([...DEFAULT_FAILURE_CODES]),
  clock: callable<() => number>().default(() => Date.now),
}).strict();

/**
 * A circuit breaker. Transitions from open to half-open happen when the breaker is next
 * consulted after `openMs` (no timers run), so an idle breaker costs nothing.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, CircuitOpenError, TransportError } from "@snakepit/snakepit";
 * let now = 0;
 * const breaker = new CircuitBreaker({ name: "gpu", failureThreshold: 2, openMs: 1000, clock: () => now });
 * breaker.on("state-change", (change) => console.log(change.from, "->", change.to));
 * for (let i = 0; i < 2; i++) breaker.acquire().failure(new TransportError("down", { grpcStatus: 14 }));
 * try {
 *   breaker.acquire();
 * } catch (error) {
 *   console.log(error instanceof CircuitOpenError, (error as CircuitOpenError).retryAfterMs);
 * }
 * now = 1000;
 * breaker.acquire().success();
 * // Prints: closed -> open, true 1000, open -> half_open, half_open -> closed
 * ```
 */
export class CircuitBreaker {
  /** The circuit's name. */
  readonly name: string;
  readonly failureThreshold: number;
  readonly successThreshold: number;
  readonly openMs: number;
  readonly halfOpenMaxCalls: number;
  readonly #failureCodes: ReadonlySet<string>;
  readonly #clock: () => number;
  readonly #listeners = new Listeners<CircuitBreakerEvents>("circuit breaker", ["state-change"]);
  #state: CircuitState = "closed";
  // Bumped on every transition: a permit from an earlier state settles into nothing.
  #epoch = 0;
  #consecutiveFailures = 0;
  #trialSuccesses = 0;
  #trialsInFlight = 0;
  #openedAt: number | null = null;
  #lastFailure: unknown = undefined;

  /**
   * @throws TypeError | RangeError naming a malformed option and the value received
   */
  constructor(options: CircuitBreakerOptions = {}) {
    const parsed = parseOptions(breakerOptionsSchema, options, "create circuit breaker");
    this.name = parsed.name;
    this.failureThreshold = parsed.failureThreshold;
    this.successThreshold = parsed.successThreshold;
    this.openMs = parsed.openMs;
    this.halfOpenMaxCalls = parsed.halfOpenMaxCalls;
    this.#failureCodes = new Set(parsed.failureCodes);
    this.#clock = parsed.clock;
  }

  /** The current state (an open circuit whose period has passed reports, and becomes, half-open). */
  get state(): CircuitState {
    this.#refresh();
    return this.#state;
  }

  /** Subscribes to `"state-change"`; returns the function that unsubscribes. */
  on<K extends keyof CircuitBreakerEvents>(name: K, listener: (event: CircuitBreakerEvents[K]) => void): () => void {
    return this.#listeners.on(name, listener);
  }

  /**
   * Reserves one call. Settle the permit with `success()` or `failure(error)`.
   *
   * @throws CircuitOpenError when the circuit is open, or half-open with every trial slot taken
   */
  acquire(): CircuitPermit {
    this.#refresh();
    if (this.#state === "open") {
      const retryAfterMs = this.#retryAfterMs();
      throw new CircuitOpenError(
        `Circuit "${this.name}" is open after ${this.#consecutiveFailures} consecutive failures` +
          `${this.#lastFailureCode()}; calls fail fast for another ${retryAfterMs} ms`,
        { circuit: this.name, retryAfterMs, cause: this.#lastFailure },
      );
    }
    if (this.#state === "half_open") {
      if (this.#trialsInFlight >= this.halfOpenMaxCalls) {
        const calls = this.halfOpenMaxCalls === 1 ? "its 1 trial call is" : `its ${this.halfOpenMaxCalls} trial calls are`;
        throw new CircuitOpenError(`Circuit "${this.name}" is half-open and ${calls} in flight; call rejected`, {
          circuit: this.name,
          retryAfterMs: 0,
          cause: this.#lastFailure,
        });
      }
      this.#trialsInFlight += 1;
    }
    return this.#permit(this.#epoch, this.#state === "half_open");
  }

  /**
   * Runs `call` under the breaker: rejects at once with `CircuitOpenError` while open.
   *
   * @throws CircuitOpenError, or whatever `call` throws
   */
  async run<T>(call: () => Promise<T>): Promise<T> {
    const permit = this.acquire();
    try {
      const value = await call();
      permit.success();
      return value;
    } catch (error) {
      permit.failure(error);
      throw error;
    }
  }

  /** Closes the circuit and clears its counters (an operator's override). */
  reset(): void {
    this.#consecutiveFailures = 0;
    this.#lastFailure = undefined;
    if (this.#state !== "closed") this.#transition("closed", "reset");
  }

  /** The breaker's state and counters. */
  snapshot(): CircuitSnapshot {
    this.#refresh();
    return {
      name: this.name,
      state: this.#state,
      consecutiveFailures: this.#consecutiveFailures,
      trialsInFlight: this.#trialsInFlight,
      openedAt: this.#openedAt,
      retryAfterMs: this.#state === "open" ? this.#retryAfterMs() : 0,
    };
  }

  #permit(epoch: number, trial: boolean): CircuitPermit {
    let settled = false;
    const settle = (outcome: "success" | "failure" | "neutral", error?: unknown) => {
      if (settled) return;
      settled = true;
      if (epoch !== this.#epoch) return;
      if (trial) this.#trialsInFlight -= 1;
      if (outcome === "success") this.#onSuccess();
      else if (outcome === "failure") this.#onFailure(error, trial);
    };
    return {
      success: () => settle("success"),
      failure: (error: unknown) => settle(outcomeOf(error, this.#failureCodes), error),
      release: () => settle("neutral"),
    };
  }

  #onSuccess(): void {
    this.#consecutiveFailures = 0;
    if (this.#state !== "half_open") return;
    this.#trialSuccesses += 1;
    if (this.#trialSuccesses >= this.successThreshold) {
      this.#lastFailure = undefined;
      this.#transition("closed", "trials_succeeded");
    }
  }

  #onFailure(error: unknown, trial: boolean): void {
    this.#consecutiveFailures += 1;
    this.#lastFailure = error;
    if (trial) this.#transition("open", "trial_failed");
    else if (this.#consecutiveFailures >= this.failureThreshold) this.#transition("open", "failure_threshold");
  }

  #refresh(): void {
    if (this.#state === "open" && this.#retryAfterMs() === 0) this.#transition("half_open", "open_period_elapsed");
  }

  #retryAfterMs(): number {
    return Math.max(0, (this.#openedAt ?? 0) + this.openMs - this.#clock());
  }

  #lastFailureCode(): string {
    const code = codeOf(this.#lastFailure);
    return code === undefined ? "" : ` (last: ${code})`;
  }

  #transition(to: CircuitState, reason: CircuitChangeReason): void {
    const from = this.#state;
    const at = this.#clock();
    this.#state = to;
    this.#epoch += 1;
    this.#trialsInFlight = 0;
    this.#trialSuccesses = 0;
    if (to === "open") this.#openedAt = at;
    if (to === "closed") this.#consecutiveFailures = 0;
    this.#listeners.emit("state-change", {
      circuit: this.name,
      from,
      to,
      reason,
      at,
      consecutiveFailures: this.#consecutiveFailures,
    });
  }
}
