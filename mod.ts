/**
 * Snakepit: supervised pools of Python workers for Bun and Deno, called as async functions.
 *
 * Start a pool of Python worker processes running an adapter (a class whose `@tool` methods
 * become callable), call its tools, stream from generator tools, and close it: every worker and
 * its children are gone afterwards.
 *
 * @example
 * ```ts
 * import { Pool, PythonError } from "@snakepit/snakepit";
 *
 * await using pool = await Pool.start({
 *   adapter: "snakepit_bridge.examples.numeric:NumericAdapter",
 *   size: 2,
 * });
 * console.log(await pool.call("add", { a: 1, b: 2 })); // 3
 * for await (const n of pool.stream("count", { n: 3 })) console.log(n); // 0 1 2
 * try {
 *   await pool.call("fail", { message: "on purpose" });
 * } catch (error) {
 *   if (error instanceof PythonError) console.log(error.pythonType); // ValueError
 * }
 * ```
 *
 * @module
 */
export { Pool } from "./src/pool/pool.ts";
export {
  CONCURRENT_TASKS_PER_WORKER_MAX,
  type CallOptions,
  type PoolOptions,
  type SessionMode,
  WORKERS_MAX,
  type WorkerLogSink,
} from "./src/pool/options.ts";
export { type CallTiming, type PoolEventMap, type PoolEventName } from "./src/pool/events.ts";
export type { PoolStats, WorkerStats } from "./src/pool/stats.ts";
export type { Quantiles } from "./src/pool/histogram.ts";
export { defaultStateDirectory, type ReapReport, reapDeadRuns } from "./src/pool/registry.ts";
export type { ToolDescription, WorkerCapabilities, WorkerDescription } from "./src/bridge/transport.ts";
export type { Encoding } from "./src/codec/mod.ts";
export { type PythonSource, resolvePython, type ResolvedPython } from "./src/python_env/resolve.ts";
export * from "./src/errors/mod.ts";
export * from "./src/reliability/mod.ts";
export * from "./src/tensor/mod.ts";
export * from "./src/telemetry/mod.ts";
export * from "./src/hardware/mod.ts";
export * from "./src/python_env/mod.ts";
export {
  decodeDescriptor,
  type DtypeName,
  encodeDescriptor,
  type LockMode,
  type LockOptions,
  type NativeLibrary,
  NativeLibraryError,
  type NativeLimits,
  normalizeDescriptor,
  onRegionEvent,
  openNativeLibrary,
  readRegionHeader,
  reapRegions,
  Region,
  type RegionCreateOptions,
  type RegionEvent,
  type RegionHeader,
  type RegionInfo,
  RegionLock,
  type RegionOpenOptions,
  type RegionReapOptions,
  type RegionReapReport,
  SharedMemoryError,
  type TensorDescriptor,
  validateDescriptor,
} from "./ffi/mod.ts";
