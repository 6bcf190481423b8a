/**
 * Health monitor: counts crashes, failed and successful calls over a sliding window and derives
 * a status (healthy, degraded, unhealthy) from them; notes workers that died by segfault, abort
 * or out-of-memory, and raises alerts when rates pass configurable limits.
 *
 * @module
 */
import { z } from "zod";
import type { ErrorCode } from "../errors/snakepit_error.ts";
import { codeOf, DEFAULT_FAILURE_CODES, ERROR_CODES, outcomeOf } from "./failure_codes.ts";
import { Listeners } from "./_listeners.ts";
import { SlidingCounts } from "./_sliding_counts.ts";
import { callable, integer, parseOptions, requireOrder } from "./_parse_options.ts";

/** A pool's health. */
export type HealthStatus = "healthy" | "degraded" | "unhealthy";

/** Options of a `HealthMonitor`. */
export interface HealthMonitorOptions {
  /** Name in events (the pool's). Default `"default"`. */
  name?: string;
  /** The sliding window rates are computed over. Default 60000 ms; 1000 ms to 1 day. */
  windowMs?: number;
  /** Buckets the window is counted in (its resolution). Default 60; 1 to 3600. */
  buckets?: number;
  /** Crashes within the window that make the pool degraded. Default 3. */
  degradedCrashes?: number;
  /** Crashes within the window that make it unhealthy. Default 10; at least `degradedCrashes`. */
  unhealthyCrashes?: number;
  /** Failed share of calls within the window that makes it degraded. Default 0.1; (0, 1]. */
  degradedFailureRate?: number;
  /** Failed share that makes it unhealthy. Default 0.5; at least `degradedFailureRate`. */
  unhealthyFailureRate?: number;
  /** Calls the window must hold before failure rates count. Default 10. */
  minCalls?: number;
  /** Crashes per minute (averaged over the window) that fire an alert. Default 5; null: never. */
  alertCrashesPerMinute?: number | null;
  /** Failed calls per minute that fire an alert. Default null (never). */
  alertFailuresPerMinute?: number | null;
  /** Crash and failure records kept for `history()`. Default 100; 1 to 10000. */
  historyMax?: number;
  /** Error codes that count as failures. Default `DEFAULT_FAILURE_CODES`. */
  failureCodes?: readonly ErrorCode[];
  /** Milliseconds now (inject a fake clock in tests). Default `Date.now`. */
  clock?: () => number;
}

/** What a crash record needs: the pool's `worker:exit` event and `WorkerCrashedError` both fit. */
export interface CrashReport {
  /** `normal`, `python_error`, `killed`, `segfault`, `abort`, `signal` (or `oom` where known). */
  classification: string;
  workerId?: string;
  exitCode?: number | null;
  signal?: string | null;
}

/** A remembered crash or failure. */
export interface HealthRecord {
  at: number;
  type: "crash" | "failure";
  /** The exit classification of a crash, the error code of a failure. */
  what: string;
  workerId: string | undefined;
}

/** How a notable worker death looked. `killed` is SIGKILL, which is also how the OOM killer kills. */
export type NotableExitKind = "segfault" | "abort" | "killed" | "out_of_memory";

/** Counts over the current window. */
export interface HealthSnapshot {
  monitor: string;
  status: HealthStatus;
  windowMs: number;
  crashes: number;
  successes: number;
  failures: number;
  /** failures / (successes + failures), 0 without calls. */
  failureRate: number;
  /** Notable exits within the window, by kind. */
  notableExits: Record<NotableExitKind, number>;
}

/** Events of a `HealthMonitor`. */
export interface HealthMonitorEvents {
  /** The status changed (evaluated on every record and every read). */
  "status-change": { monitor: string; from: HealthStatus; to: HealthStatus; at: number; snapshot: HealthSnapshot };
  /** A worker died by segfault, abort, SIGKILL, or a call ran out of memory. */
  "notable-exit": { monitor: string; kind: NotableExitKind; workerId: string | undefined; at: number };
  /** A rate passed its limit (`firing`), or fell back under it (`resolved`). */
  alert: {
    monitor: string;
    rule: "crash_rate" | "failure_rate";
    state: "firing" | "resolved";
    ratePerMinute: number;
    limitPerMinute: number;
    at: number;
  };
}

const optionalRate = z.number({ invalid_type_error: "must be a number or null" })
  .positive({ message: "must be a positive number or null" }).nullable();
const share = z.number({ invalid_type_error: "must be a number" })
  .gt(0, { message: "must be greater than 0 and at most 1" }).max(1, { message: "must be greater than 0 and at most 1" });

const monitorOptionsSchema = z.object({
  name: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must be 1-64 characters" })
    .max(64, { message: "must be 1-64 characters" }).default("default"),
  windowMs: z.number({ invalid_type_error: "must be a number of milliseconds" })
    .int({ message: "must be a whole number of milliseconds" })
    .min(1_000, { message: "must be from 1000 to 86400000 ms" })
    .max(86_400_000, { message: "must be from 1000 to 86400000 ms" }).default(60_000),
  buckets: integer(1, 3_600).default(60),
  degradedCrashes: integer(1, 1_000_000).default(3),
  unhealthyCrashes: integer(1, 1_000_000).default(10),
  degradedFailureRate: share.default(0.1),
  unhealthyFailureRate: share.default(0.5),
  minCalls: integer(1, 1_000_000_000).default(10),
  alertCrashesPerMinute: optionalRate.default(5),
  alertFailuresPerMinute: optionalRate.default(null),
  historyMax: integer(1, 10_000).default(100),
  failureCodes: z.array(z.enum(ERROR_CODES, { message: "must list error codes" }), {
    invalid_type_error: "must be an array of error codes",
  }).default([...DEFAULT_FAILURE_CODES]),
  clock: callable<() => number>().default(() => Date.now),
}).strict();

type ResolvedOptions = z.output<typeof monitorOptionsSchema>;

const NOTABLE_KINDS: readonly NotableExitKind[] = ["segfault", "abort", "killed", "out_of_memory"];
type Counted = "successes" | "failures" | "crashes" | NotableExitKind;

const NOTABLE_BY_CLASSIFICATION: Record<string, NotableExitKind> = {
  segfault: "segfault",
  abort: "abort",
  killed: "killed",
  oom: "out_of_memory",
};

/**
 * A health monitor for one pool. Feed it with `recordCrash` (from the pool's `worker:exit`
 * events), and `recordSuccess` / `recordFailure` (per call); read `status` or `snapshot()`.
 * Memory stays bounded: counts live in `buckets` slots, records in a `historyMax` ring.
 *
 * @example
 * ```ts
 * import { HealthMonitor } from "@snakepit/snakepit";
 * let now = 0;
 * const monitor = new HealthMonitor({ degradedCrashes: 2, unhealthyCrashes: 4, windowMs: 60_000, clock: () => now });
 * monitor.on("status-change", ({ from, to }) => console.log(from, "->", to));
 * for (let i = 0; i < 4; i++) monitor.recordCrash({ classification: "segfault", workerId: "w0" });
 * now += 61_000;
 * console.log(monitor.status);
 * // Prints: healthy -> degraded, degraded -> unhealthy, unhealthy -> healthy, healthy
 * ```
 */
export class HealthMonitor {
  /** The monitor's name. */
  readonly name: string;
  readonly #options: ResolvedOptions;
  readonly #counts: SlidingCounts<Counted>;
  readonly #failureCodes: ReadonlySet<string>;
  readonly #history: HealthRecord[] = [];
  readonly #listeners = new Listeners<HealthMonitorEvents>("health monitor", ["status-change", "notable-exit", "alert"]);
  readonly #firing = new Set<"crash_rate" | "failure_rate">();
  #status: HealthStatus = "healthy";

  /**
   * @throws TypeError | RangeError naming a malformed option and the value received
   */
  constructor(options: HealthMonitorOptions = {}) {
    const action = "create health monitor";
    this.#options = parseOptions(monitorOptionsSchema, options, action);
    requireOrder(options, this.#options, "degradedCrashes", "unhealthyCrashes", action);
    requireOrder(options, this.#options, "degradedFailureRate", "unhealthyFailureRate", action);
    this.name = this.#options.name;
    this.#counts = new SlidingCounts<Counted>(
      ["successes", "failures", "crashes", ...NOTABLE_KINDS],
      this.#options.windowMs,
      this.#options.buckets,
    );
    this.#failureCodes = new Set(this.#options.failureCodes);
  }

  /** The status over the current window (reading it may emit `status-change` and `alert`). */
  get status(): HealthStatus {
    return this.#evaluate().status;
  }

  /** Subscribes to `"status-change"`, `"notable-exit"` or `"alert"`; returns the unsubscribe function. */
  on<K extends keyof HealthMonitorEvents>(name: K, listener: (event: HealthMonitorEvents[K]) => void): () => void {
    return this.#listeners.on(name, listener);
  }

  /**
   * Records a worker's unexpected exit.
   *
   * @throws TypeError when `exit.classification` is not a string
   */
  recordCrash(exit: CrashReport): void {
    if (typeof exit?.classification !== "string") {
      throw new TypeError(
        `Cannot record crash: exit.classification must be a string, received ${JSON.stringify(exit?.classification) ?? "undefined"}`,
      );
    }
    const now = this.#options.clock();
    this.#counts.add("crashes", now);
    this.#remember({ at: now, type: "crash", what: exit.classification, workerId: exit.workerId });
    const notable = NOTABLE_BY_CLASSIFICATION[exit.classification];
    if (notable) this.#notable(notable, exit.workerId, now);
    this.#evaluate();
  }

  /** Records a call that succeeded. */
  recordSuccess(): void {
    this.#counts.add("successes", this.#options.clock());
    // Healthy with no alert firing, a success changes nothing (it can only lower rates): skip
    // the evaluation, which is most of a call's bookkeeping on the fast lane.
    if (this.#status !== "healthy" || this.#firing.size > 0) this.#evaluate();
  }

  /**
   * Records a call that failed with `error` (a `SnakepitError`, or anything with a string
   * `code`, like the pool's `call:end` event). Failure codes count as failures; a Python
   * exception counts as an answered call; anything else is ignored.
   */
  recordFailure(error: unknown): void {
    const outcome = outcomeOf(error, this.#failureCodes);
    if (outcome === "neutral") return;
    const now = this.#options.clock();
    if (outcome === "success") {
      this.#counts.add("successes", now);
    } else {
      const code = codeOf(error)!;
      this.#counts.add("failures", now);
      this.#remember({ at: now, type: "failure", what: code, workerId: (error as { workerId?: string }).workerId });
      if (code === "out_of_memory") this.#notable("out_of_memory", undefined, now);
    }
    this.#evaluate();
  }

  /** The counts and status over the current window. */
  snapshot(): HealthSnapshot {
    return this.#evaluate();
  }

  /** The last `historyMax` crashes and failures, oldest first (not limited to the window). */
  history(): readonly HealthRecord[] {
    return [...this.#history];
  }

  #remember(record: HealthRecord): void {
    this.#history.push(record);
    if (this.#history.length > this.#options.historyMax) this.#history.shift();
  }

  #notable(kind: NotableExitKind, workerId: string | undefined, at: number): void {
    this.#counts.add(kind, at);
    this.#listeners.emit("notable-exit", { monitor: this.name, kind, workerId, at });
  }

  #evaluate(): HealthSnapshot {
    const options = this.#options;
    const now = options.clock();
    const totals = this.#counts.totals(now);
    const calls = totals.successes + totals.failures;
    const failureRate = calls === 0 ? 0 : totals.failures / calls;
    const rated = calls >= options.minCalls;
    const status: HealthStatus = totals.crashes >= options.unhealthyCrashes || (rated && failureRate >= options.unhealthyFailureRate)
      ? "unhealthy"
      : totals.crashes >= options.degradedCrashes || (rated && failureRate >= options.degradedFailureRate)
      ? "degraded"
      : "healthy";
    const snapshot: HealthSnapshot = {
      monitor: this.name,
      status,
      windowMs: options.windowMs,
      crashes: totals.crashes,
      successes: totals.successes,
      failures: totals.failures,
      failureRate,
      notableExits: { segfault: totals.segfault, abort: totals.abort, killed: totals.killed, out_of_memory: totals.out_of_memory },
    };
    const perMinute = 60_000 / options.windowMs;
    this.#alert("crash_rate", totals.crashes * perMinute, options.alertCrashesPerMinute, now);
    this.#alert("failure_rate", totals.failures * perMinute, options.alertFailuresPerMinute, now);
    if (status !== this.#status) {
      const from = this.#status;
      this.#status = status;
      this.#listeners.emit("status-change", { monitor: this.name, from, to: status, at: now, snapshot });
    }
    return snapshot;
  }

  #alert(rule: "crash_rate" | "failure_rate", ratePerMinute: number, limitPerMinute: number | null, at: number): void {
    if (limitPerMinute === null) return;
    const firing = ratePerMinute >= limitPerMinute;
    if (firing === this.#firing.has(rule)) return;
    if (firing) this.#firing.add(rule);
    else this.#firing.delete(rule);
    this.#listeners.emit("alert", { monitor: this.name, rule, state: firing ? "firing" : "resolved", ratePerMinute, limitPerMinute, at });
  }
}
