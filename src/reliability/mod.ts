/**
 * The crash barrier: a retry policy, a circuit breaker and a health monitor, composed around a
 * call by the executor. Every decision is taken from error classes and codes, never from text.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Executor, HealthMonitor, Pool } from "@snakepit/snakepit";
 *
 * await using pool = await Pool.start({ adapter: "snakepit_bridge.examples.numeric:NumericAdapter", workerLogs: "silent" });
 * const executor = new Executor({
 *   retry: { attempts: 3, initialDelayMs: 100, maxDelayMs: 2_000 },
 *   breaker: new CircuitBreaker({ name: "numeric", failureThreshold: 5, openMs: 30_000 }),
 *   health: new HealthMonitor({ name: "numeric" }),
 *   deadlineMs: 10_000,
 * });
 * const sum = await executor.run((signal) => pool.call("add", { a: 1, b: 2 }, { signal }), { idempotent: true });
 * console.log(sum, executor.health?.status); // 3 healthy
 * ```
 *
 * @module
 */
export {
  type Attempt,
  execute,
  Executor,
  type ExecutorEvents,
  type ExecutorOptions,
  type RunOptions,
} from "./executor.ts";
export { RETRY_ATTEMPTS_MAX, type RetryDecision, type RetryOptions, RetryPolicy } from "./retry_policy.ts";
export {
  CircuitBreaker,
  type CircuitBreakerEvents,
  type CircuitBreakerOptions,
  type CircuitChangeReason,
  type CircuitPermit,
  type CircuitSnapshot,
  type CircuitState,
  type CircuitStateChange,
} from "./circuit_breaker.ts";
export {
  type CrashReport,
  HealthMonitor,
  type HealthMonitorEvents,
  type HealthMonitorOptions,
  type HealthRecord,
  type HealthSnapshot,
  type HealthStatus,
  type NotableExitKind,
} from "./health_monitor.ts";
export { DEFAULT_FAILURE_CODES, ERROR_CODES, mayHaveRun, NOT_DISPATCHED_CODES } from "./failure_codes.ts";
