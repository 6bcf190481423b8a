/**
 * Pool and call options, validated with zod at the edge.
 *
 * @module
 */
import { z } from "zod";
import { describeValue, parseOptions } from "../_validation.ts";
import type { CircuitBreakerOptions } from "../reliability/circuit_breaker.ts";
import type { HealthMonitorOptions } from "../reliability/health_monitor.ts";
import type { RetryOptions } from "../reliability/retry_policy.ts";
import { POOL_EVENT_NAMES, type PoolEventMap, type PoolEventName } from "./events.ts";

/** Most workers one pool may run. */
export const WORKERS_MAX = 256;
/** Most concurrent calls one worker may serve. */
export const CONCURRENT_TASKS_PER_WORKER_MAX = 1024;

/** Where a worker's stderr lines (its logs) go. */
export type WorkerLogSink = "forward" | "silent" | ((line: string, workerId: string) => void);

/** Options of `Pool.start`. Every option but `adapter` has a default. */
export interface PoolOptions {
  /** The Python adapter class, as `"package.module:ClassName"`. Required. */
  adapter: string;
  /** Number of workers. Default 1; 1 to 256. */
  size?: number;
  /**
   * The interpreter. Default: `$SNAKEPIT_PYTHON`, then `.venv/bin/python`, then
   * `$VIRTUAL_ENV/bin/python`, then `python3` on `PATH`.
   */
  pythonPath?: string;
  /** The pool's name, in worker ids and errors. Default `"default"`; `[A-Za-z0-9_-]`, up to 32. */
  name?: string;
  /** The instance name recorded on worker command lines. Default `"snakepit"`. */
  instance?: string;
  /**
   * Calls one worker serves at once. Default 1; up to 1024. Above 1 only helps when the adapter
   * declares `thread_safe = True` or its tools are `async`.
   */
  concurrentTasksPerWorker?: number;
  /** How long a worker may take to become ready. Default 30000 ms. */
  startTimeoutMs?: number;
  /** How long `close()` waits for a worker after SIGTERM before SIGKILL. Default 5000 ms. */
  shutdownTimeoutMs?: number;
  /** Extra environment variables for the workers (e.g. `PYTHONPATH`). Default none. */
  env?: Record<string, string>;
  /** Working directory of the workers. Default: the host's. */
  cwd?: string;
  /** Wire encoding of arguments and results. Default `"msgpack"`; `"json"` for debugging. */
  encoding?: "msgpack" | "json";
  /** Where worker stderr lines go: `"forward"` (default, to the host's stderr), `"silent"`, or a function. */
  workerLogs?: WorkerLogSink;
  /** Path of the native library handed to the workers. Default: `$SNAKEPIT_NATIVE_LIB` or the built one. */
  nativeLibraryPath?: string;
  /**
   * How the host talks to its workers. `"auto"` (default): the shared-memory fast lane, falling
   * back to gRPC (with one warning naming the reason) where the lane cannot be set up;
   * `"fast-lane"`: the lane or a start-up error; `"grpc"`: gRPC over the worker's unix socket.
   * Without the option, `$SNAKEPIT_TRANSPORT` (one of the same words) decides.
   */
  transport?: "auto" | "fast-lane" | "grpc";
  /**
   * Fast-lane spin budget in microseconds: how long each side polls for the other's next frame
   * before parking (the host on a doorbell, the worker on a futex). Default 50; 0 to 10000.
   */
  laneSpinUs?: number;
  /**
   * Calls the pool may hand a fast-lane worker beyond the one it runs, to wait in its ring (for
   * workers that run one call at a time). The pool still prefers idle workers; a call waiting in
   * a ring keeps its queue-wait budget (past it, the worker drops it unrun) and, if the worker
   * dies before starting it, goes back to the queue. Default 16; 0 to 1024; 0 turns it off.
   */
  pipelineDepth?: number;
  /**
   * Tensors and Arrow tables in shared memory. `"auto"` (default): `SharedTensor`s travel as
   * descriptors, and arrays and tables of at least `zeroCopyThresholdBytes` go through a region,
   * when the native library loads and every worker can map regions (otherwise everything is
   * copied, results are marked `isCopied`, and one warning names the reason); `"off"`: always copy.
   */
  zeroCopy?: "auto" | "off";
  /**
   * Typed arrays, tensors and tables (arguments and results) of at least this many bytes go
   * through shared memory; smaller ones travel inline in the payload. Default 65536 (64 KiB,
   * the crossover measured by `bench/zero_copy.ts`); 0 to 2^40.
   */
  zeroCopyThresholdBytes?: number;
  /**
   * Typed arrays, tensors and tables that are copied rather than shared (zero-copy off or
   * unavailable) and are at least this many bytes travel beside their call, streamed in ~4 MiB
   * chunks over the worker's gRPC channel, so values of 2 GiB and more cross. Default 67108864
   * (64 MiB); 1 to 2^30.
   */
  chunkedCopyThresholdBytes?: number;
  /** Calls that may wait for a worker; past it `PoolSaturatedError` at once. Default 1000; 0 to 1e6. */
  maxQueue?: number;
  /** How long a call may wait in the queue before `QueueTimeoutError` (it never runs). Default 60000 ms. */
  queueTimeoutMs?: number;
  /** Workers started at once during start-up and restarts. Default 4. */
  startConcurrency?: number;
  /** `Pool.start` resolves once this many workers are ready (the rest keep starting). Default: `size`. */
  minReady?: number;
  /** After a timeout or abort, how long a tool may take to stop before its worker is killed and replaced. Default 2000 ms. */
  cancelGraceMs?: number;
  /** Interval between heartbeat pings to each worker. Default 5000 ms. */
  heartbeatIntervalMs?: number;
  /** Consecutive missed heartbeats after which a worker is killed and replaced. Default 3. */
  heartbeatMissesMax?: number;
  /** Recycle a worker after this many calls (drained, then replaced). Default 0 (never). */
  maxCallsPerWorker?: number;
  /** Recycle a worker older than this. Default 0 (never). */
  maxWorkerAgeMs?: number;
  /** Recycle a worker whose resident memory (reported by the worker) passes this. Default 0 (never). */
  maxWorkerRssMb?: number;
  /** First restart delay after a crash; doubles per recent crash. Default 100 ms. */
  restartBackoffMs?: number;
  /** Cap of the restart delay. Default 5000 ms. */
  restartBackoffMaxMs?: number;
  /** Crashes within `restartWindowMs` past which the pool is marked degraded. Default 10. */
  restartStormLimit?: number;
  /** The window over which crashes are counted. Default 60000 ms. */
  restartWindowMs?: number;
  /** Default routing of calls with a `sessionId`. Default `"hint"`. */
  sessionMode?: SessionMode;
  /** Idle time after which a session expires. Default 1800000 ms (30 min). */
  sessionTtlMs?: number;
  /** Sessions tracked at once; past it the least recently used is evicted. Default 10000. */
  sessionsMax?: number;
  /** Where the worker registry lives. Default `$SNAKEPIT_STATE_DIR`, else `$XDG_STATE_HOME/snakepit`, else `~/.local/state/snakepit`. */
  stateDirectory?: string;
  /** Close pools on SIGINT/SIGTERM before the host exits. Default true. */
  handleSignals?: boolean;
  /**
   * Event listeners subscribed before the first worker starts (so start-up progress is visible).
   * Default none. Later listeners: `pool.on(name, listener)`.
   */
  on?: PoolEventListeners;
  /**
   * Retry policy for calls that ask for it (`idempotent: true` or a call's `retry`): attempts,
   * back-off with jitter and cap. Default `{ attempts: 3, initialDelayMs: 100, maxDelayMs: 5000 }`.
   */
  retry?: RetryOptions;
  /**
   * A circuit breaker around every call of this pool: while open, calls fail at once with
   * `CircuitOpenError`. Default off; `{}` enables it with its defaults.
   */
  breaker?: CircuitBreakerOptions;
  /** The pool's health monitor (always on): windows and alert rates. Default its defaults. */
  health?: HealthMonitorOptions;
}

/** Listeners by event name, for `PoolOptions.on`. */
export type PoolEventListeners = { [K in PoolEventName]?: (event: PoolEventMap[K]) => void };

/**
 * How a call with a `sessionId` is routed to the session's worker.
 * - `hint`: prefer it, fall back to another worker when it is busy or gone (for warm caches);
 * - `strict-queue`: wait for it;
 * - `strict-fail-fast`: reject with `WorkerBusyError` at once when it is busy.
 * In the strict modes a session whose worker died rejects its next call with `SessionLostError`.
 */
export type SessionMode = "hint" | "strict-queue" | "strict-fail-fast";

const ADAPTER_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$/;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

const positiveInteger = (max: number) =>
  z.number({ invalid_type_error: "must be a number" })
    .int({ message: "must be a positive integer" })
    .min(1, { message: "must be a positive integer" })
    .max(max, { message: `must be at most ${max}` });

/** A whole number from 0 to `max` (0 usually meaning "off"). */
const count = (max: number) =>
  z.number({ invalid_type_error: "must be a number" })
    .int({ message: "must be a non-negative integer" })
    .min(0, { message: "must be a non-negative integer" })
    .max(max, { message: `must be at most ${max}` });

const sessionModeSchema = z.enum(["hint", "strict-queue", "strict-fail-fast"], {
  message: 'must be "hint", "strict-queue" or "strict-fail-fast"',
});

/** The transports a pool can use (see `PoolOptions.transport`). */
export const TRANSPORTS = ["auto", "fast-lane", "grpc"] as const;
/** One of {@link TRANSPORTS}. */
export type TransportChoice = typeof TRANSPORTS[number];
const transportSchema = z.enum(TRANSPORTS, { message: 'must be "auto", "fast-lane" or "grpc"' });

const durationMs = z.number({ invalid_type_error: "must be a number of milliseconds" })
  .int({ message: "must be a whole number of milliseconds" })
  .min(1, { message: "must be a positive number of milliseconds" })
  .max(2_147_483_647, { message: "must be at most 2147483647 ms" });

/** The zod schema behind `PoolOptions`. */
export const poolOptionsSchema = z.object({
  adapter: z.string({ required_error: "is required", invalid_type_error: "must be a string" })
    .regex(ADAPTER_PATTERN, { message: 'must look like "package.module:ClassName"' }),
  size: positiveInteger(WORKERS_MAX).default(1),
  pythonPath: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must not be empty" })
    .optional(),
  name: z.string({ invalid_type_error: "must be a string" })
    .regex(NAME_PATTERN, { message: "must be 1-32 letters, digits, '_' or '-'" }).default("default"),
  instance: z.string({ invalid_type_error: "must be a string" })
    .regex(NAME_PATTERN, { message: "must be 1-32 letters, digits, '_' or '-'" }).default("snakepit"),
  concurrentTasksPerWorker: positiveInteger(CONCURRENT_TASKS_PER_WORKER_MAX).default(1),
  startTimeoutMs: durationMs.default(30_000),
  shutdownTimeoutMs: durationMs.default(5_000),
  env: z.record(z.string({ invalid_type_error: "must map names to strings" })).default({}),
  cwd: z.string({ invalid_type_error: "must be a string" }).optional(),
  encoding: z.enum(["msgpack", "json"], { message: 'must be "msgpack" or "json"' }).default("msgpack"),
  // z.custom, not z.function: zod would wrap the function in a validating proxy.
  workerLogs: z.union([
    z.enum(["forward", "silent"]),
    z.custom<(line: string, workerId: string) => void>((value) => typeof value === "function"),
  ], { errorMap: () => ({ message: 'must be "forward", "silent" or a function' }) }).default("forward"),
  nativeLibraryPath: z.string({ invalid_type_error: "must be a string" }).optional(),
  transport: transportSchema.optional(),
  laneSpinUs: count(10_000).default(50),
  pipelineDepth: count(1024).default(16),
  zeroCopy: z.enum(["auto", "off"], { message: 'must be "auto" or "off"' }).default("auto"),
  zeroCopyThresholdBytes: count(2 ** 40).default(65_536),
  chunkedCopyThresholdBytes: positiveInteger(2 ** 30).default(64 * 1024 * 1024),
  maxQueue: count(1_000_000).default(1000),
  queueTimeoutMs: durationMs.default(60_000),
  startConcurrency: positiveInteger(WORKERS_MAX).default(4),
  minReady: positiveInteger(WORKERS_MAX).optional(),
  cancelGraceMs: durationMs.default(2_000),
  heartbeatIntervalMs: durationMs.default(5_000),
  heartbeatMissesMax: positiveInteger(1000).default(3),
  maxCallsPerWorker: count(Number.MAX_SAFE_INTEGER).default(0),
  maxWorkerAgeMs: count(Number.MAX_SAFE_INTEGER).default(0),
  maxWorkerRssMb: count(1_048_576).default(0),
  restartBackoffMs: durationMs.default(100),
  restartBackoffMaxMs: durationMs.default(5_000),
  restartStormLimit: positiveInteger(1_000_000).default(10),
  restartWindowMs: durationMs.default(60_000),
  sessionMode: sessionModeSchema.default("hint"),
  sessionTtlMs: durationMs.default(1_800_000),
  sessionsMax: positiveInteger(10_000_000).default(10_000),
  stateDirectory: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must not be empty" })
    .optional(),
  handleSignals: z.boolean({ invalid_type_error: "must be a boolean" }).default(true),
  // Validated by the reliability classes themselves, with messages naming these options.
  retry: z.record(z.unknown(), { invalid_type_error: "must be an object of retry options" }).optional(),
  breaker: z.record(z.unknown(), { invalid_type_error: "must be an object of circuit breaker options" }).optional(),
  health: z.record(z.unknown(), { invalid_type_error: "must be an object of health monitor options" }).optional(),
  on: z.record(
    z.string().refine((name) => POOL_EVENT_NAMES.has(name), { message: `must name pool events (${[...POOL_EVENT_NAMES].join(", ")})` }),
    z.custom<(event: unknown) => void>((value) => typeof value === "function", { message: "must be a function" }),
  ).default({}),
}).strict().superRefine((options, context) => {
  if (options.minReady !== undefined && options.minReady > options.size) {
    context.addIssue({ code: z.ZodIssueCode.custom, path: ["minReady"], message: `must be at most options.size (${options.size})` });
  }
  if (options.restartBackoffMaxMs < options.restartBackoffMs) {
    context.addIssue({
      code: z.ZodIssueCode.custom,
      path: ["restartBackoffMaxMs"],
      message: `must be at least options.restartBackoffMs (${options.restartBackoffMs})`,
    });
  }
});

/** `PoolOptions` with defaults filled in. */
export type ResolvedPoolOptions = Omit<z.output<typeof poolOptionsSchema>, "on" | "retry" | "breaker" | "health" | "transport"> & {
  transport: TransportChoice;
  workerLogs: WorkerLogSink;
  on: PoolEventListeners;
  retry?: RetryOptions;
  breaker?: CircuitBreakerOptions;
  health?: HealthMonitorOptions;
};

/** Options of one call. */
export interface CallOptions {
  /** Run deadline from dispatch, in ms. Default: none. */
  timeoutMs?: number;
  /** Cancels the call: before dispatch it never runs; after, the worker is told. */
  signal?: AbortSignal;
  /** Per-session state on the worker (routing comes with session affinity). */
  sessionId?: string;
  /** Correlation id for logs and errors. Default: a new UUID. */
  correlationId?: string;
  /** W3C `traceparent` to continue. Default: a new trace. */
  traceparent?: string;
  /** Routing for `sessionId`. Default: the pool's `sessionMode`. */
  sessionMode?: SessionMode;
  /** Queue-wait budget for this call. Default: the pool's `queueTimeoutMs`. */
  queueTimeoutMs?: number;
  /**
   * Whether running the call twice is harmless. When true, a call that may have reached Python
   * (worker crash, timeout) is retried under the pool's retry policy. Default false: only failures
   * before dispatch (saturated, queue timeout, busy, circuit open) are retried, and only when the
   * call asks for retry.
   */
  idempotent?: boolean;
  /** This call's retry options (each overriding the pool's), or `false` for a single attempt. */
  retry?: RetryOptions | false;
}

const callOptionsSchema = z.object({
  timeoutMs: durationMs.optional(),
  signal: z.custom<AbortSignal>((value) => value instanceof AbortSignal, { message: "must be an AbortSignal" })
    .optional(),
  sessionId: z.string({ invalid_type_error: "must be a string" }).max(256, { message: "must be at most 256 characters" })
    .optional(),
  correlationId: z.string({ invalid_type_error: "must be a string" })
    .max(128, { message: "must be at most 128 characters" }).optional(),
  traceparent: z.string({ invalid_type_error: "must be a string" })
    .regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/, { message: "must be a W3C traceparent" })
    .optional(),
  sessionMode: sessionModeSchema.optional(),
  queueTimeoutMs: durationMs.optional(),
  idempotent: z.boolean({ invalid_type_error: "must be a boolean" }).optional(),
  retry: z.custom<Record<string, unknown> | false>(
    (value) => value === false || (value !== null && typeof value === "object" && !Array.isArray(value)),
    { message: "must be an object of retry options or false" },
  ).optional(),
}).strict();

/** Validates pool options (see `PoolOptions`). */
export function parsePoolOptions(input: unknown): ResolvedPoolOptions {
  if (input === null || typeof input !== "object") {
    throw new TypeError(`Cannot start pool: options must be an object, received ${describeValue(input)}`);
  }
  const resolved = parseOptions(poolOptionsSchema, input, "start pool", "options") as ResolvedPoolOptions;
  resolved.transport ??= transportFromEnvironment();
  return resolved;
}

/** `$SNAKEPIT_TRANSPORT`, checked; "auto" when unset or empty. */
function transportFromEnvironment(): TransportChoice {
  const value = globalThis.process?.env?.SNAKEPIT_TRANSPORT ?? "";
  if (value === "") return "auto";
  if ((TRANSPORTS as readonly string[]).includes(value)) return value as TransportChoice;
  throw new TypeError(
    `Cannot start pool: $SNAKEPIT_TRANSPORT must be "auto", "fast-lane" or "grpc", received ${JSON.stringify(value)}`,
  );
}

/** Call options once validated. */
export type ParsedCallOptions = z.output<typeof callOptionsSchema>;

const NO_CALL_OPTIONS: ParsedCallOptions = Object.freeze({});

/** Validates call options (see `CallOptions`). The common empty case skips zod entirely. */
export function parseCallOptions(input: unknown, tool: string): ParsedCallOptions {
  if (input === undefined || (input !== null && typeof input === "object" && Object.keys(input).length === 0)) {
    return NO_CALL_OPTIONS;
  }
  return parseOptions(callOptionsSchema, input, `call "${tool}"`, "options");
}
