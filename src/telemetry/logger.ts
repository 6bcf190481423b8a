/**
 * Logging with pino: a synchronous JSON logger by default, pool events as records tagged with
 * correlation ids, slow calls, and the workers' Python logs parsed into the same logger.
 *
 * pino's worker-thread transports misbehave on Bun and Deno, so the default destination is
 * `pino.destination({ sync: true })`; pass your own logger for anything else.
 *
 * @module
 */
import pino, { type Logger } from "pino";
import { z } from "zod";
import type { Pool } from "../pool/pool.ts";
import type { WorkerLogSink } from "../pool/options.ts";
import { parseTelemetryOptions } from "./_parse_options.ts";
import { parsePythonLogLine } from "./_python_log_line.ts";
import { traceIdOf } from "./trace_context.ts";

export type { Logger } from "pino";

/** Options of `createLogger`. */
export interface CreateLoggerOptions {
  /** Lowest level logged. Default `"info"`; pino's levels. */
  level?: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  /** File descriptor written synchronously. Default 1 (stdout). */
  fd?: number;
  /** Fields on every record. Default `{ name: "snakepit" }`. */
  base?: Record<string, unknown>;
}

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

const createSchema = z.object({
  level: z.enum(LEVELS, { message: `must be one of ${LEVELS.join(", ")}` }).default("info"),
  fd: z.number({ invalid_type_error: "must be a file descriptor" }).int({ message: "must be a file descriptor" })
    .min(0, { message: "must be a file descriptor" }).default(1),
  base: z.record(z.unknown(), { invalid_type_error: "must be an object" }).default({ name: "snakepit" }),
}).strict();

/**
 * A pino logger writing JSON lines synchronously.
 *
 * @example
 * ```ts
 * const logger = createLogger({ level: "debug" });
 * logger.info({ pool: "default" }, "started");
 * ```
 */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const parsed = parseTelemetryOptions(createSchema, options, "create logger");
  return pino({ level: parsed.level, base: parsed.base }, pino.destination({ fd: parsed.fd, sync: true }));
}

/** Options of `attachLogger`. */
export interface AttachLoggerOptions {
  /** The logger. Default: `createLogger()`. */
  logger?: Logger;
  /** Calls running longer than this are logged at `warn`. Default 1000 ms; 0 logs none. */
  slowCallMs?: number;
  /** Log every settled call at `debug` (failures at `warn` regardless). Default false. */
  logCalls?: boolean;
}

const attachSchema = z.object({
  logger: z.custom<Logger>((value) => typeof (value as Logger)?.child === "function", { message: "must be a pino logger" })
    .optional(),
  slowCallMs: z.number({ invalid_type_error: "must be a number of milliseconds" })
    .min(0, { message: "must be at least 0" }).default(1000),
  logCalls: z.boolean({ invalid_type_error: "must be a boolean" }).default(false),
}).strict();

/**
 * Logs a pool's lifecycle, failed calls and slow calls; returns the function that stops.
 *
 * @example
 * ```ts
 * const logger = createLogger();
 * const pool = await Pool.start({ adapter: "m:A", workerLogs: workerLogSink(logger) });
 * attachLogger(pool, { logger, slowCallMs: 250 });
 * ```
 */
export function attachLogger(pool: Pool, options: AttachLoggerOptions = {}): () => void {
  const parsed = parseTelemetryOptions(attachSchema, options, "attach logger");
  const logger = (parsed.logger ?? createLogger()).child({ pool: pool.name });
  const { slowCallMs, logCalls } = parsed;
  const unsubscribers = [
    pool.on("worker:spawn", (event) => logger.debug({ workerId: event.workerId, pid: event.pid }, "worker spawned")),
    pool.on("worker:ready", (event) => logger.info({ workerId: event.workerId, pid: event.pid, startupMs: event.startupMs }, "worker ready")),
    pool.on("worker:start-failed", (event) => logger.error({ workerId: event.workerId, code: event.code }, `worker failed to start: ${event.message}`)),
    pool.on("worker:exit", (event) => {
      const fields = { workerId: event.workerId, pid: event.pid, exitCode: event.exitCode, signal: event.signal, classification: event.classification };
      if (event.expected) logger.info(fields, "worker exited");
      else logger.error(fields, "worker crashed");
    }),
    pool.on("worker:restart", (event) => logger.warn({ delayMs: event.delayMs, crashesInWindow: event.crashesInWindow }, "worker restart scheduled")),
    pool.on("worker:recycle", (event) => logger.info({ workerId: event.workerId, reason: event.reason }, "worker recycled")),
    pool.on("worker:killed", (event) => logger.warn({ workerId: event.workerId, reason: event.reason }, "worker killed")),
    pool.on("worker:heartbeat-missed", (event) => logger.warn({ workerId: event.workerId, misses: event.misses }, "heartbeat missed")),
    pool.on("pool:degraded", (event) => logger.error({ crashesInWindow: event.crashesInWindow }, "pool degraded: crash storm")),
    pool.on("pool:recovered", () => logger.info("pool recovered")),
    pool.on("call:end", (event) => {
      const slow = slowCallMs > 0 && event.runMs >= slowCallMs;
      if (event.ok && !slow && !logCalls) return;
      const fields = {
        correlationId: event.correlationId,
        // The W3C trace id (the traceparent's second field), as Python's records carry it.
        traceId: traceIdOf(event.traceparent),
        requestId: event.requestId,
        tool: event.tool,
        workerId: event.workerId,
        ok: event.ok,
        errorCode: event.errorCode,
        queueWaitMs: round(event.queueWaitMs),
        runMs: round(event.runMs),
        timing: event.timing,
      };
      if (!event.ok) logger.warn(fields, `call failed: ${event.errorCode}`);
      else if (slow) logger.warn({ ...fields, slowCallMs }, "slow call");
      else logger.debug(fields, "call");
    }),
  ];
  return () => unsubscribers.forEach((unsubscribe) => unsubscribe());
}

/**
 * A `workerLogs` sink that parses each worker stderr line into a record of `logger`: structured
 * Python log records keep their level, logger name, correlation id and trace id; any other line
 * arrives as a plain `info` record with `source: "python-stderr"`.
 *
 * @example
 * ```ts
 * const logger = createLogger();
 * await using pool = await Pool.start({ adapter: "m:A", workerLogs: workerLogSink(logger) });
 * ```
 */
export function workerLogSink(logger: Logger): Exclude<WorkerLogSink, string> {
  if (typeof logger?.child !== "function") {
    throw new TypeError(`Cannot create worker log sink: logger must be a pino logger, received ${String(logger)}`);
  }
  return (line, workerId) => {
    const record = parsePythonLogLine(line);
    if (record === undefined) {
      logger.info({ source: "python-stderr", workerId }, line);
      return;
    }
    const fields: Record<string, unknown> = { source: "python", workerId, pythonLogger: record.logger };
    if (record.correlationId) fields.correlationId = record.correlationId;
    if (record.traceparent) {
      fields.traceparent = record.traceparent;
      fields.traceId = traceIdOf(record.traceparent);
    }
    if (record.exception) fields.exception = record.exception;
    logger[record.level](fields, record.message);
  };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
