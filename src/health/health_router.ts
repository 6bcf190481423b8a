/**
 * `healthRouter`: a Hono app with Kubernetes probes and Prometheus metrics for pools.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { Pool } from "../pool/pool.ts";
import { type BreakerLike, PoolMetrics } from "../telemetry/metrics.ts";
import { TelemetryBus } from "../telemetry/telemetry_bus.ts";
import { parseTelemetryOptions } from "../telemetry/_parse_options.ts";
import { checkPool, type CheckStatus, type ComponentReport, overallStatus, sameSecret, type WatchedPool } from "./_checks.ts";

export type { CheckStatus, ComponentReport } from "./_checks.ts";

/** One pool with its readiness rules. */
export interface HealthPoolOptions {
  pool: Pool;
  /** Whether the service is not ready without it. Default true. */
  required?: boolean;
  /** Ready workers needed to be ready. Default 1. */
  minReadyWorkers?: number;
  /** Queued calls at which the pool stops being ready. Default: no limit. */
  queueHighWaterMark?: number;
  /** A breaker guarding the pool; open means not ready. Default none. */
  breaker?: BreakerLike;
}

/** A check of another component (shared memory, Python environment, hardware, ...). */
export interface HealthComponent {
  check: () => ComponentReport | Promise<ComponentReport>;
  /** Whether a `fail` makes the service not ready. Default false (it reports `warn` overall). */
  required?: boolean;
}

/** Options of `healthRouter`. */
export interface HealthRouterOptions {
  /** The pools to watch: pools, or pools with rules. Required; at least one. */
  pools: Array<Pool | HealthPoolOptions>;
  /** Extra components of `/readyz` and `/healthz`, by name. Default none. */
  components?: Record<string, HealthComponent>;
  /** How long a computed report is reused, so probes never pile onto the workers. Default 1000 ms; 0 to 60000. */
  cacheMs?: number;
  /** Bearer token the verbose `/healthz?verbose` view requires. Default: none (open). */
  token?: string;
  /** Metrics served on `/metrics`. Default: a new `PoolMetrics` observing the pools; `false` for no route. */
  metrics?: PoolMetrics | false;
  /** Publishes a `health:alert` on this bus whenever a component's verdict changes. Default none. */
  bus?: TelemetryBus;
}

/** A health report, the body of `/healthz?verbose`. */
export interface HealthReport {
  status: CheckStatus;
  checkedAt: string;
  components: Record<string, ComponentReport>;
}

const poolEntrySchema = z.union([
  z.custom<Pool>((value) => value instanceof Pool),
  z.object({
    pool: z.custom<Pool>((value) => value instanceof Pool, { message: "must be a Pool" }),
    required: z.boolean({ invalid_type_error: "must be a boolean" }).optional(),
    minReadyWorkers: z.number({ invalid_type_error: "must be a number" }).int({ message: "must be a non-negative integer" })
      .min(0, { message: "must be a non-negative integer" }).optional(),
    queueHighWaterMark: z.number({ invalid_type_error: "must be a number" }).int({ message: "must be a positive integer" })
      .min(1, { message: "must be a positive integer" }).optional(),
    breaker: z.custom<BreakerLike>((value) => typeof (value as BreakerLike)?.state === "string", { message: "must be a circuit breaker" })
      .optional(),
  }).strict(),
], { errorMap: () => ({ message: "must be a Pool or { pool, required?, minReadyWorkers?, queueHighWaterMark?, breaker? }" }) });

const optionsSchema = z.object({
  pools: z.array(poolEntrySchema, { required_error: "is required", invalid_type_error: "must be an array of pools" })
    .min(1, { message: "must name at least one pool" }),
  components: z.record(z.object({
    check: z.custom<HealthComponent["check"]>((value) => typeof value === "function", { message: "must be a function" }),
    required: z.boolean({ invalid_type_error: "must be a boolean" }).optional(),
  }, { invalid_type_error: "must be { check, required? }" })).default({}),
  cacheMs: z.number({ invalid_type_error: "must be a number of milliseconds" }).int({ message: "must be a whole number of milliseconds" })
    .min(0, { message: "must be at least 0" }).max(60_000, { message: "must be at most 60000" }).default(1000),
  token: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must not be empty" }).optional(),
  metrics: z.union([z.custom<PoolMetrics>((value) => value instanceof PoolMetrics), z.literal(false)], { errorMap: () => ({ message: "must be a PoolMetrics or false" }) })
    .optional(),
  bus: z.custom<TelemetryBus>((value) => value instanceof TelemetryBus, { message: "must be a TelemetryBus" }).optional(),
}).strict();

/**
 * A Hono app serving `/livez`, `/readyz`, `/startupz`, `/healthz` (`?verbose` for the
 * per-component report) and `/metrics`. Answers 200 when healthy or degraded-but-serving, 503
 * otherwise; mount it anywhere with `app.route("/ops", healthRouter(...))`.
 *
 * @param options the pools and the rules; see `HealthRouterOptions`
 * @returns a Hono app
 * @throws TypeError / RangeError for invalid options
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { Pool } from "@snakepit/snakepit";
 * import { healthRouter } from "@snakepit/snakepit/health";
 *
 * const pool = await Pool.start({ adapter: "snakepit_bridge.examples.echo:EchoAdapter" });
 * const app = new Hono();
 * app.route("/ops", healthRouter({ pools: [pool] }));
 * const response = await app.request("/ops/readyz");
 * console.log(response.status); // 200
 * await pool.close();
 * ```
 */
export function healthRouter(options: HealthRouterOptions): Hono {
  const parsed = parseTelemetryOptions(optionsSchema, options, "create health router");
  const watched: WatchedPool[] = parsed.pools.map((entry) => {
    const rules = entry instanceof Pool ? { pool: entry } : entry;
    return {
      pool: rules.pool,
      required: rules.required ?? true,
      minReadyWorkers: rules.minReadyWorkers ?? 1,
      queueHighWaterMark: rules.queueHighWaterMark,
      breaker: rules.breaker,
    };
  });
  const metrics = parsed.metrics === false ? undefined : parsed.metrics ?? new PoolMetrics();
  if (metrics && parsed.metrics === undefined) {
    for (const { pool, breaker } of watched) {
      metrics.observe(pool);
      if (breaker) metrics.observeBreaker(breaker);
    }
  }
  const components = parsed.components as Record<string, HealthComponent>;
  let cached: { at: number; report: Promise<HealthReport> } | undefined;
  const previousVerdicts = new Map<string, CheckStatus>();
  // Latched: once every required pool had its ready workers, start-up is over for good.
  const startupReached = () =>
    watched.every((entry) => !entry.required || (!entry.pool.closed && entry.pool.stats().readyWorkers >= entry.minReadyWorkers));
  let startupFinished = startupReached();

  const report = (): Promise<HealthReport> => {
    const now = Date.now();
    if (cached && now - cached.at < parsed.cacheMs) return cached.report;
    cached = { at: now, report: buildReport(watched, components) };
    if (parsed.bus) void cached.report.then((current) => announceChanges(current, previousVerdicts, parsed.bus!));
    return cached.report;
  };

  const app = new Hono();
  app.get("/livez", (c) => c.text("ok"));
  app.get("/startupz", (c) => {
    startupFinished ||= startupReached();
    return c.json({ status: startupFinished ? "pass" : "fail" }, startupFinished ? 200 : 503);
  });
  app.get("/readyz", async (c) => {
    const current = await report();
    return c.json({ status: current.status }, current.status === "fail" ? 503 : 200);
  });
  app.get("/healthz", async (c) => {
    const current = await report();
    const code = current.status === "fail" ? 503 : 200;
    if (c.req.query("verbose") === undefined) return c.json({ status: current.status }, code);
    if (parsed.token !== undefined) {
      const given = (c.req.header("authorization") ?? "").replace(/^Bearer\s+/i, "");
      if (!sameSecret(given, parsed.token)) {
        c.header("WWW-Authenticate", 'Bearer realm="snakepit health"');
        return c.json({ status: current.status, error: "the verbose report needs a bearer token" }, 401);
      }
    }
    return c.json(current, code);
  });
  if (metrics) {
    app.get("/metrics", async (c) => {
      const body = await metrics.metrics();
      return c.body(body, 200, { "Content-Type": metrics.contentType });
    });
  }
  return app;
}

async function buildReport(watched: WatchedPool[], components: Record<string, HealthComponent>): Promise<HealthReport> {
  const entries: Array<[string, boolean, ComponentReport]> = watched.map((entry) => [`pool:${entry.pool.name}`, entry.required, checkPool(entry)]);
  for (const [name, component] of Object.entries(components)) {
    let result: ComponentReport;
    try {
      result = await component.check();
    } catch (error) {
      result = { status: "fail", reason: `check threw: ${error instanceof Error ? error.message : String(error)}` };
    }
    entries.push([name, component.required ?? false, result]);
  }
  return {
    status: overallStatus(entries.map(([, required, result]) => [required, result])),
    checkedAt: new Date().toISOString(),
    components: Object.fromEntries(entries.map(([name, , result]) => [name, result])),
  };
}

function announceChanges(report: HealthReport, previous: Map<string, CheckStatus>, bus: TelemetryBus): void {
  for (const [component, result] of Object.entries(report.components)) {
    const before = previous.get(component);
    previous.set(component, result.status);
    // The first verdict is news only when it is bad; later ones whenever they change.
    if (before === result.status || (before === undefined && result.status === "pass")) continue;
    bus.publish("health:alert", { component, status: result.status, ...(result.reason ? { reason: result.reason } : {}) });
  }
}
