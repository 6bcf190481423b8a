/**
 * Pool and call options, validated with zod at the edge.
 *
 * @module
 */
import { z } from "zod";

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
}

const ADAPTER_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$/;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

const positiveInteger = (max: number) =>
  z.number({ invalid_type_error: "must be a number" })
    .int({ message: "must be a positive integer" })
    .min(1, { message: "must be a positive integer" })
    .max(max, { message: `must be at most ${max}` });

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
  workerLogs: z.union([z.enum(["forward", "silent"]), z.function()], {
    message: 'must be "forward", "silent" or a function',
  }).default("forward"),
  nativeLibraryPath: z.string({ invalid_type_error: "must be a string" }).optional(),
}).strict();

/** `PoolOptions` with defaults filled in. */
export type ResolvedPoolOptions = z.output<typeof poolOptionsSchema> & { workerLogs: WorkerLogSink };

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
}).strict();

function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  if (value === undefined) return "undefined";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function valueAt(input: unknown, path: Array<string | number>): unknown {
  let current = input;
  for (const key of path) current = (current as Record<string | number, unknown> | undefined)?.[key];
  return current;
}

/**
 * Validates `input` against `schema`; throws `RangeError` for out-of-range numbers and
 * `TypeError` for everything else, naming the action, the option path and the value received.
 */
export function parseOptions<T extends z.ZodTypeAny>(schema: T, input: unknown, action: string, root: string): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = [root, ...issue.path].join(".");
  if (issue.code === "unrecognized_keys") {
    throw new TypeError(`Cannot ${action}: ${root} has unknown option(s) ${issue.keys.map((key) => JSON.stringify(key)).join(", ")}`);
  }
  const received = describeValue(valueAt(input, issue.path));
  const message = `Cannot ${action}: ${path} ${issue.message}, received ${received}`;
  throw issue.code === "too_small" || issue.code === "too_big" ? new RangeError(message) : new TypeError(message);
}

/** Validates pool options (see `PoolOptions`). */
export function parsePoolOptions(input: unknown): ResolvedPoolOptions {
  if (input === null || typeof input !== "object") {
    throw new TypeError(`Cannot start pool: options must be an object, received ${describeValue(input)}`);
  }
  return parseOptions(poolOptionsSchema, input, "start pool", "options") as ResolvedPoolOptions;
}

/** Validates call options (see `CallOptions`). */
export function parseCallOptions(input: unknown, tool: string): z.output<typeof callOptionsSchema> {
  return parseOptions(callOptionsSchema, input ?? {}, `call "${tool}"`, "options");
}
