/**
 * How the crash barrier reads an error: whether the call reached a worker, and whether the
 * failure says something about the pool's health. Decided from `error.code` alone, never from
 * message text.
 *
 * @module
 */
import type { ErrorCode } from "../errors/snakepit_error.ts";
import { SnakepitError } from "../errors/snakepit_error.ts";
import { PythonError } from "../errors/python_error.ts";

/**
 * Codes of failures that happen before a call is dispatched: the tool never started, so retrying
 * is safe even when the call is not idempotent.
 */
export const NOT_DISPATCHED_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "saturated",
  "queue_timeout",
  "worker_busy",
  "circuit_open",
  "worker_start",
]);

/**
 * Codes that count against a pool's health by default (circuit breaker failures, health
 * monitor failures): the worker died, hung, could not start, lost its channel, or its device
 * failed or ran out of memory. A Python exception such as `ValueError` is the tool answering,
 * not the pool failing.
 */
export const DEFAULT_FAILURE_CODES: readonly ErrorCode[] = Object.freeze<ErrorCode[]>([
  "worker_crashed",
  "worker_start",
  "timeout",
  "transport",
  "out_of_memory",
  "device",
]);

/** Every code of the taxonomy, for validating options that list codes. */
export const ERROR_CODES = Object.freeze([
  "python",
  "shape_mismatch",
  "dtype_mismatch",
  "device",
  "out_of_memory",
  "unknown_tool",
  "invalid_arguments",
  "serialization",
  "saturated",
  "queue_timeout",
  "timeout",
  "cancelled",
  "worker_start",
  "worker_crashed",
  "worker_busy",
  "session_lost",
  "circuit_open",
  "closed",
  "configuration",
  "transport",
  "native",
  "region_access",
] as const satisfies readonly ErrorCode[]);

// Fails to compile when a code is added to ErrorCode but not to ERROR_CODES.
const everyCodeListed: Exclude<ErrorCode, (typeof ERROR_CODES)[number]> extends never ? true : never = true;
void everyCodeListed;

/**
 * Whether the failed call may have run on a worker (so a retry would run the tool again).
 *
 * @example
 * ```ts
 * import { PoolSaturatedError, mayHaveRun } from "@snakepit/snakepit";
 * console.log(mayHaveRun(new PoolSaturatedError("full", { maxQueue: 1 }))); // false
 * ```
 */
export function mayHaveRun(error: SnakepitError): boolean {
  return !NOT_DISPATCHED_CODES.has(error.code);
}

/** The code of `error` when it is a `SnakepitError`, or anything carrying a string `code`. */
export function codeOf(error: unknown): string | undefined {
  if (error instanceof SnakepitError) return error.code;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * How an attempt's outcome counts for a circuit breaker or health monitor: `"failure"` when its
 * code is in `failureCodes`, `"success"` when the worker answered (a Python exception is an
 * answer), `"neutral"` otherwise (cancelled, refused before dispatch, not a Snakepit error).
 */
export function outcomeOf(error: unknown, failureCodes: ReadonlySet<string>): "failure" | "success" | "neutral" {
  const code = codeOf(error);
  if (code !== undefined && failureCodes.has(code)) return "failure";
  if (error instanceof PythonError) return "success";
  return "neutral";
}
