/**
 * Failures of the pool, its workers and the transport, as opposed to Python exceptions.
 *
 * @module
 */
import { GrpcStatus, SnakepitError, type SnakepitErrorOptions } from "./snakepit_error.ts";

/** How a worker process ended. */
export type ExitClassification = "normal" | "python_error" | "killed" | "segfault" | "abort" | "signal";

/** Facts about a worker process's exit. */
export interface WorkerExit {
  /** Exit code, or null when a signal ended it. */
  exitCode: number | null;
  /** The signal that ended it (e.g. `SIGKILL`), or null. */
  signal: string | null;
  classification: ExitClassification;
  /** The last lines the worker wrote to stderr. */
  stderrTail: string;
}

/** A value could not be encoded for the wire, or a reply could not be decoded. */
export class SerializationError extends SnakepitError {
  readonly code = "serialization" as const;
  readonly retryable = false;
  readonly grpcStatus: number = GrpcStatus.INVALID_ARGUMENT;
  /** Where in the value the problem is, e.g. `args.items[3]`. */
  readonly path: string | undefined;
  constructor(message: string, options: SnakepitErrorOptions & { path?: string } = {}) {
    super(message, options);
    this.path = options.path;
  }
  protected override details(): Record<string, unknown> {
    return { path: this.path };
  }
}

/** The pool's queue is full (`maxQueue`): rejected at once, nothing was queued. */
export class PoolSaturatedError extends SnakepitError {
  readonly code = "saturated" as const;
  readonly retryable = true;
  readonly grpcStatus: number = GrpcStatus.RESOURCE_EXHAUSTED;
  /** The queue bound that was hit. */
  readonly maxQueue: number;
  constructor(message: string, options: SnakepitErrorOptions & { maxQueue: number }) {
    super(message, options);
    this.maxQueue = options.maxQueue;
  }
  protected override details(): Record<string, unknown> {
    return { maxQueue: this.maxQueue };
  }
}

/** The call waited in the queue longer than `queueTimeoutMs`; it never ran. */
export class QueueTimeoutError extends SnakepitError {
  readonly code = "queue_timeout" as const;
  readonly retryable = true;
  readonly grpcStatus: number = GrpcStatus.DEADLINE_EXCEEDED;
  readonly queueTimeoutMs: number;
  constructor(message: string, options: SnakepitErrorOptions & { queueTimeoutMs: number }) {
    super(message, options);
    this.queueTimeoutMs = options.queueTimeoutMs;
  }
  protected override details(): Record<string, unknown> {
    return { queueTimeoutMs: this.queueTimeoutMs };
  }
}

/**
 * The session's worker is gone (crashed, recycled or the session expired), so its state is lost.
 * Stateful sessions are never silently re-routed; start the session again.
 */
export class SessionLostError extends SnakepitError {
  readonly code = "session_lost" as const;
  readonly retryable = false;
  readonly grpcStatus: number = GrpcStatus.FAILED_PRECONDITION;
  readonly sessionId: string;
  /** Why the session is gone. */
  readonly reason: "worker_exited" | "expired" | "evicted";
  constructor(
    message: string,
    options: SnakepitErrorOptions & { sessionId: string; reason: "worker_exited" | "expired" | "evicted" },
  ) {
    super(message, options);
    this.sessionId = options.sessionId;
    this.reason = options.reason;
  }
  protected override details(): Record<string, unknown> {
    return { sessionId: this.sessionId, reason: this.reason };
  }
}

/** The call ran past its `timeoutMs`; the worker was told to cancel it. */
export class CallTimeoutError extends SnakepitError {
  readonly code = "timeout" as const;
  readonly retryable = true;
  readonly grpcStatus: number = GrpcStatus.DEADLINE_EXCEEDED;
  readonly timeoutMs: number;
  constructor(message: string, options: SnakepitErrorOptions & { timeoutMs: number }) {
    super(message, options);
    this.timeoutMs = options.timeoutMs;
  }
  protected override details(): Record<string, unknown> {
    return { timeoutMs: this.timeoutMs };
  }
}

/** The call was cancelled by the worker or the pool (an `AbortSignal` rejects with its reason). */
export class CancelledError extends SnakepitError {
  readonly code = "cancelled" as const;
  readonly retryable = false;
  readonly grpcStatus: number = GrpcStatus.CANCELLED;
}

/** A worker could not be started: missing interpreter, failed import, early exit, no readiness. */
export class WorkerStartError extends SnakepitError {
  readonly code = "worker_start" as const;
  readonly retryable = false;
  readonly grpcStatus: number = GrpcStatus.FAILED_PRECONDITION;
  /** The worker's id within its pool. */
  readonly workerId: string;
  /** The Python traceback, when the worker reported one (an adapter import failure). */
  readonly pythonTraceback: string | undefined;
  /** The exit, when the worker exited during start-up. */
  readonly exit: WorkerExit | undefined;
  constructor(
    message: string,
    options: SnakepitErrorOptions & { workerId: string; pythonTraceback?: string; exit?: WorkerExit },
  ) {
    super(message, options);
    this.workerId = options.workerId;
    this.pythonTraceback = options.pythonTraceback;
    this.exit = options.exit;
  }
  protected override details(): Record<string, unknown> {
    return { workerId: this.workerId, pythonTraceback: this.pythonTraceback, exit: this.exit };
  }
}

/** The worker running the call died. Retryable, but only safe for idempotent calls. */
export class WorkerCrashedError extends SnakepitError {
  readonly code = "worker_crashed" as const;
  readonly retryable = true;
  readonly grpcStatus: number = GrpcStatus.UNAVAILABLE;
  readonly workerId: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly classification: ExitClassification;
  readonly stderrTail: string;
  constructor(message: string, options: SnakepitErrorOptions & { workerId: string; exit: WorkerExit }) {
    super(message, options);
    this.workerId = options.workerId;
    this.exitCode = options.exit.exitCode;
    this.signal = options.exit.signal;
    this.classification = options.exit.classification;
    this.stderrTail = options.exit.stderrTail;
  }
  protected override details(): Record<string, unknown> {
    return {
      workerId: this.workerId,
      exitCode: this.exitCode,
      signal: this.signal,
      classification: this.classification,
      stderrTail: this.stderrTail,
    };
  }
}

/** The worker refused the call because it is at capacity; retry on another worker or later. */
export class WorkerBusyError extends SnakepitError {
  readonly code = "worker_busy" as const;
  readonly retryable = true;
  readonly grpcStatus: number = GrpcStatus.RESOURCE_EXHAUSTED;
}

/** The pool was closed; no call reaches a worker after `close()`. */
export class PoolClosedError extends SnakepitError {
  readonly code = "closed" as const;
  readonly retryable = false;
  readonly grpcStatus: number = GrpcStatus.UNAVAILABLE;
}

/** Options or environment are wrong (a missing interpreter, a malformed adapter spec). */
export class ConfigurationError extends SnakepitError {
  readonly code = "configuration" as const;
  readonly retryable = false;
  readonly grpcStatus: number = GrpcStatus.FAILED_PRECONDITION;
}

/** The channel to a worker failed for a reason other than the worker's death. */
export class TransportError extends SnakepitError {
  readonly code = "transport" as const;
  readonly retryable = true;
  readonly grpcStatus: number;
  constructor(message: string, options: SnakepitErrorOptions & { grpcStatus: number }) {
    super(message, options);
    this.grpcStatus = options.grpcStatus;
  }
}

/**
 * The native library failed. `op` is the operation; `statusName` the stable status name (decide
 * on it, never on the message); `status` the numeric status (0 when no native call failed).
 */
export class NativeError extends SnakepitError {
  readonly code = "native" as const;
  readonly retryable = false;
  readonly grpcStatus: number = GrpcStatus.INTERNAL;
  readonly op: string;
  readonly status: number;
  readonly statusName: string;
  readonly errno: number | undefined;
  constructor(
    message: string,
    options: SnakepitErrorOptions & { op: string; status: number; statusName: string; errno?: number },
  ) {
    super(message, options);
    this.op = options.op;
    this.status = options.status;
    this.statusName = options.statusName;
    this.errno = options.errno;
  }
  protected override details(): Record<string, unknown> {
    return { op: this.op, status: this.status, statusName: this.statusName, errno: this.errno };
  }
}
