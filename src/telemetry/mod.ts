/**
 * Telemetry: Prometheus metrics, pino logging with correlation ids, trace context.
 *
 * @example
 * ```ts
 * import { Pool, PoolMetrics } from "@snakepit/snakepit";
 *
 * await using pool = await Pool.start({ adapter: "snakepit_bridge.examples.echo:EchoAdapter" });
 * const metrics = new PoolMetrics();
 * metrics.observe(pool);
 * await pool.call("echo", { value: 1 });
 * console.log(await metrics.metrics());
 * ```
 *
 * @module
 */
export {
  type BreakerLike,
  DEFAULT_BUCKETS_SECONDS,
  PoolMetrics,
  type PoolMetricsOptions,
  type SharedMemoryUsage,
} from "./metrics.ts";
export {
  attachLogger,
  type AttachLoggerOptions,
  createLogger,
  type CreateLoggerOptions,
  type Logger,
  workerLogSink,
} from "./logger.ts";
export { newTraceparent, parseTraceparent, type TraceContext, traceIdOf } from "./trace_context.ts";
export { GpuProfiler, type GpuProfilerOptions, type GpuSample } from "./gpu_profiler.ts";
export {
  type StateChangeSource,
  type SubscribeOptions,
  TelemetryBus,
  type TelemetryEvent,
  type TelemetryEventMap,
  type TelemetryEventName,
} from "./telemetry_bus.ts";
