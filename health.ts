/**
 * The health router: Kubernetes probes and Prometheus metrics for Snakepit pools, as a Hono app
 * to mount anywhere.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { Pool } from "@snakepit/snakepit";
 * import { healthRouter } from "@snakepit/snakepit/health";
 *
 * const pool = await Pool.start({ adapter: "snakepit_bridge.examples.echo:EchoAdapter" });
 * const app = new Hono();
 * app.route("/ops", healthRouter({ pools: [pool], cacheMs: 500 }));
 * console.log((await app.request("/ops/livez")).status); // 200
 * await pool.close();
 * ```
 *
 * @module
 */
export {
  type CheckStatus,
  type ComponentReport,
  type HealthComponent,
  type HealthPoolOptions,
  type HealthReport,
  healthRouter,
  type HealthRouterOptions,
} from "./src/health/health_router.ts";
export { hardwareComponent, pythonEnvironmentComponent, sharedMemoryComponent } from "./src/health/components.ts";
export { type BreakerLike, PoolMetrics, type PoolMetricsOptions, type SharedMemoryUsage } from "./src/telemetry/metrics.ts";
