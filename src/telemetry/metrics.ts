/**
 * Prometheus metrics of pools, breakers and shared memory, on a `prom-client` registry the user
 * can share with their own metrics.
 *
 * `prom-client` runs unchanged on Bun and Deno; its default process metrics are left off unless
 * asked for (`defaultMetrics: true`), so nothing here depends on a runtime's `perf_hooks`.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { collectDefaultMetrics } from "prom-client";
import { z } from "zod";
import type { Pool } from "../pool/pool.ts";
import { parseTelemetryOptions } from "./_parse_options.ts";

/** Anything with a name and a circuit state (a `CircuitBreaker` fits). */
export interface BreakerLike {
  readonly name: string;
  readonly state: "closed" | "open" | "half_open";
}

/** Shared-memory usage, reported by a callback at scrape time. */
export interface SharedMemoryUsage {
  bytes: number;
  regions: number;
}

/** Options of `poolMetrics`. */
export interface PoolMetricsOptions {
  /** The registry to register on. Default: a new `Registry` (see `PoolMetrics.registry`). */
  registry?: Registry;
  /** Metric name prefix. Default `"snakepit_"`; `[a-z_][a-z0-9_]*`. */
  prefix?: string;
  /** Also collect prom-client's default process metrics. Default false. */
  defaultMetrics?: boolean;
  /** Histogram buckets of call duration and queue wait, in seconds. Default 0.0005 to 30 s. */
  bucketsSeconds?: number[];
  /** Reports shared-memory usage at scrape time. Default: none (the gauges read 0). */
  sharedMemory?: () => SharedMemoryUsage;
}

/** Default buckets: sub-millisecond calls through half-minute ones. */
export const DEFAULT_BUCKETS_SECONDS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

const optionsSchema = z.object({
  registry: z.custom<Registry>((value) => value instanceof Registry, { message: "must be a prom-client Registry" })
    .optional(),
  prefix: z.string({ invalid_type_error: "must be a string" })
    .regex(/^[a-z_][a-z0-9_]*$/, { message: "must be snake_case ([a-z_][a-z0-9_]*)" }).default("snakepit_"),
  defaultMetrics: z.boolean({ invalid_type_error: "must be a boolean" }).default(false),
  bucketsSeconds: z.array(z.number().positive(), { invalid_type_error: "must be an array of positive numbers" })
    .min(1, { message: "must not be empty" }).optional(),
  sharedMemory: z.custom<() => SharedMemoryUsage>((value) => typeof value === "function", { message: "must be a function" })
    .optional(),
}).strict();

const BREAKER_STATES = ["closed", "open", "half_open"] as const;
const WORKER_STATES = ["ready", "draining", "stopping", "exited"] as const;

/**
 * The metrics of every pool and breaker it observes. Names follow Prometheus conventions
 * (`_total`, `_seconds`, `_bytes`); labels stay low-cardinality (pool, tool, outcome, state,
 * reason: never ids).
 */
export class PoolMetrics {
  /** The registry the metrics live on; serve `await registry.metrics()`. */
  readonly registry: Registry;
  readonly #pools = new Map<Pool, () => void>();
  readonly #breakers = new Set<BreakerLike>();
  readonly #calls: Counter<"pool" | "tool" | "outcome">;
  readonly #duration: Histogram<"pool" | "tool">;
  readonly #queueWait: Histogram<"pool">;
  readonly #restarts: Counter<"pool" | "reason">;

  constructor(options: PoolMetricsOptions = {}) {
    const parsed = parseTelemetryOptions(optionsSchema, options, "create pool metrics");
    this.registry = parsed.registry ?? new Registry();
    const registers = [this.registry];
    const prefix = parsed.prefix;
    const buckets = [...(parsed.bucketsSeconds ?? DEFAULT_BUCKETS_SECONDS)];
    if (parsed.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix });
    this.#calls = new Counter({
      name: `${prefix}calls_total`,
      help: "Calls settled, by pool, tool and outcome (ok or the error code).",
      labelNames: ["pool", "tool", "outcome"],
      registers,
    });
    this.#duration = new Histogram({
      name: `${prefix}call_duration_seconds`,
      help: "Time from dispatch to a worker until the call settled.",
      labelNames: ["pool", "tool"],
      buckets,
      registers,
    });
    this.#queueWait = new Histogram({
      name: `${prefix}queue_wait_seconds`,
      help: "Time a call waited for a worker.",
      labelNames: ["pool"],
      buckets,
      registers,
    });
    this.#restarts = new Counter({
      name: `${prefix}worker_restarts_total`,
      help: "Workers replaced, by reason (exit classification of a crash, or recycle_<why>).",
      labelNames: ["pool", "reason"],
      registers,
    });
    const pools = this.#pools;
    new Gauge({
      name: `${prefix}queue_depth`,
      help: "Calls waiting for a worker.",
      labelNames: ["pool"],
      registers,
      collect() {
        this.reset();
        for (const pool of pools.keys()) this.set({ pool: pool.name }, pool.stats().queued);
      },
    });
    new Gauge({
      name: `${prefix}calls_in_flight`,
      help: "Calls running on a worker.",
      labelNames: ["pool"],
      registers,
      collect() {
        this.reset();
        for (const pool of pools.keys()) this.set({ pool: pool.name }, pool.stats().inFlight);
      },
    });
    new Gauge({
      name: `${prefix}workers`,
      help: "Worker processes by state.",
      labelNames: ["pool", "state"],
      registers,
      collect() {
        this.reset();
        for (const pool of pools.keys()) {
          const workers = pool.closed ? [] : pool.stats().workers;
          for (const state of WORKER_STATES) {
            this.set({ pool: pool.name, state }, workers.filter((worker) => worker.state === state).length);
          }
        }
      },
    });
    new Gauge({
      name: `${prefix}worker_resident_memory_bytes`,
      help: "Resident memory of all workers of a pool, from their last heartbeat.",
      labelNames: ["pool"],
      registers,
      collect() {
        this.reset();
        for (const pool of pools.keys()) {
          const total = pool.closed ? 0 : pool.stats().workers.reduce((sum, worker) => sum + worker.rssBytes, 0);
          this.set({ pool: pool.name }, total);
        }
      },
    });
    const sharedMemory = parsed.sharedMemory;
    new Gauge({
      name: `${prefix}shared_memory_bytes`,
      help: "Bytes of shared-memory regions in use.",
      registers,
      collect() {
        this.set(sharedMemory?.().bytes ?? 0);
      },
    });
    new Gauge({
      name: `${prefix}shared_memory_regions`,
      help: "Shared-memory regions in use.",
      registers,
      collect() {
        this.set(sharedMemory?.().regions ?? 0);
      },
    });
    const breakers = this.#breakers;
    new Gauge({
      name: `${prefix}circuit_breaker_state`,
      help: "1 for the breaker's current state (closed, open, half_open), 0 for the others.",
      labelNames: ["circuit", "state"],
      registers,
      collect() {
        this.reset();
        for (const breaker of breakers) {
          const current = breaker.state;
          for (const state of BREAKER_STATES) this.set({ circuit: breaker.name, state }, state === current ? 1 : 0);
        }
      },
    });
  }

  /**
   * Starts counting a pool's calls, restarts and gauges; returns the function that stops.
   *
   * @example
   * ```ts
   * const metrics = new PoolMetrics();
   * metrics.observe(pool);
   * console.log(await metrics.registry.metrics());
   * ```
   */
  observe(pool: Pool): () => void {
    const existing = this.#pools.get(pool);
    if (existing) return existing;
    const name = pool.name;
    // Label children are looked up once per (tool, outcome): hashing label objects on every call
    // was most of the metrics' cost per call.
    const callCounters = new Map<string, { inc(): void }>();
    const durations = new Map<string, { observe(value: number): void }>();
    const queueWait = this.#queueWait.labels({ pool: name });
    const unsubscribers = [
      pool.on("call:end", (event) => {
        const outcome = event.ok ? "ok" : (event.errorCode ?? "error");
        const key = `${event.tool}\u0000${outcome}`;
        let counter = callCounters.get(key);
        if (!counter) callCounters.set(key, counter = this.#calls.labels({ pool: name, tool: event.tool, outcome }));
        counter.inc();
        if (event.workerId === undefined) return;
        let duration = durations.get(event.tool);
        if (!duration) durations.set(event.tool, duration = this.#duration.labels({ pool: name, tool: event.tool }));
        duration.observe(event.runMs / 1000);
      }),
      pool.on("call:start", (event) => queueWait.observe(event.queueWaitMs / 1000)),
      pool.on("worker:exit", (event) => {
        if (!event.expected) this.#restarts.inc({ pool: name, reason: event.classification });
      }),
      pool.on("worker:recycle", (event) => this.#restarts.inc({ pool: name, reason: `recycle_${event.reason}` })),
    ];
    const stop = () => {
      for (const unsubscribe of unsubscribers) unsubscribe();
      this.#pools.delete(pool);
    };
    this.#pools.set(pool, stop);
    return stop;
  }

  /** Reports a circuit breaker's state in `circuit_breaker_state`; returns the function that stops. */
  observeBreaker(breaker: BreakerLike): () => void {
    this.#breakers.add(breaker);
    return () => this.#breakers.delete(breaker);
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** The exposition's content type. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
