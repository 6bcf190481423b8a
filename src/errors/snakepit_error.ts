/**
 * The base of every failure a Snakepit caller can see.
 *
 * @module
 */

/**
 * Stable machine-readable codes, one per error class. Switch on `error.code`; never on text.
 */
export type ErrorCode =
  | "python"
  | "shape_mismatch"
  | "dtype_mismatch"
  | "device"
  | "out_of_memory"
  | "unknown_tool"
  | "invalid_arguments"
  | "serialization"
  | "saturated"
  | "queue_timeout"
  | "timeout"
  | "cancelled"
  | "worker_start"
  | "worker_crashed"
  | "worker_busy"
  | "session_lost"
  | "circuit_open"
  | "closed"
  | "configuration"
  | "transport"
  | "native"
  | "region_access";

/**
 * gRPC status codes, so an error can be mapped onto the closest one (and back).
 * See https://grpc.io/docs/guides/status-codes/.
 */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** Options every Snakepit error accepts. */
export interface SnakepitErrorOptions {
  /** The underlying failure, if any. */
  cause?: unknown;
  /** The correlation id of the call that failed, when there was one. */
  correlationId?: string;
  /** What the caller can do about it. */
  suggestion?: string;
}

/**
 * Base class of the taxonomy. Every subclass fixes `code`, `retryable` and `grpcStatus`.
 *
 * @example
 * ```ts
 * import { SnakepitError } from "@snakepit/snakepit";
 * try {
 *   // await pool.call("embed", { text: "hi" });
 * } catch (error) {
 *   if (error instanceof SnakepitError) console.log(error.code, error.retryable);
 * }
 * ```
 */
export abstract class SnakepitError extends Error {
  /** Stable code; an exhaustive union for `switch`. */
  abstract readonly code: ErrorCode;
  /** Whether retrying the same call may succeed (independent of idempotency). */
  abstract readonly retryable: boolean;
  /** The closest gRPC status code. */
  abstract readonly grpcStatus: number;
  /** The correlation id of the failed call, when there was one. */
  readonly correlationId: string | undefined;
  /** What the caller can do about it, when something can be said. */
  readonly suggestion: string | undefined;

  constructor(message: string, options: SnakepitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.correlationId = options.correlationId;
    this.suggestion = options.suggestion;
  }

  /** A plain object for structured logs (pino, JSON.stringify). */
  toJSON(): Record<string, unknown> {
    const cause = this.cause;
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      grpcStatus: this.grpcStatus,
      correlationId: this.correlationId,
      suggestion: this.suggestion,
      ...this.details(),
      cause: cause instanceof SnakepitError
        ? cause.toJSON()
        : cause instanceof Error
        ? { name: cause.name, message: cause.message }
        : cause,
    };
  }

  /** Subclass-specific fields for `toJSON`. */
  protected details(): Record<string, unknown> {
    return {};
  }
}
