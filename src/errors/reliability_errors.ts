/**
 * Failures raised by the crash barrier itself (circuit breaker), not by a worker.
 *
 * @module
 */
import { GrpcStatus, SnakepitError, type SnakepitErrorOptions } from "./snakepit_error.ts";

/** Facts about an open circuit. */
export interface CircuitOpenErrorOptions extends SnakepitErrorOptions {
  /** The circuit's name (its pool, or pool and device). */
  circuit: string;
  /** How long until the circuit lets a trial call through; 0 when it is half-open and busy. */
  retryAfterMs: number;
}

/**
 * The circuit breaker is open: recent calls kept failing (crashes, timeouts), so this call was
 * rejected at once without reaching a worker. `retryAfterMs` says when a trial call will be let
 * through. Retryable, and never dispatched, so retrying later is safe even for calls that are not
 * idempotent.
 *
 * @example
 * ```ts
 * import { CircuitOpenError } from "@snakepit/snakepit";
 * const error = new CircuitOpenError("open", { circuit: "embeddings", retryAfterMs: 1000 });
 * console.log(error.code, error.retryable, error.retryAfterMs); // circuit_open true 1000
 * ```
 */
export class CircuitOpenError extends SnakepitError {
  readonly code = "circuit_open" as const;
  readonly retryable = true;
  readonly grpcStatus: number = GrpcStatus.UNAVAILABLE;
  /** The circuit's name. */
  readonly circuit: string;
  /** Milliseconds until a trial call is allowed. */
  readonly retryAfterMs: number;

  constructor(message: string, options: CircuitOpenErrorOptions) {
    super(message, options);
    this.circuit = options.circuit;
    this.retryAfterMs = options.retryAfterMs;
  }

  protected override details(): Record<string, unknown> {
    return { circuit: this.circuit, retryAfterMs: this.retryAfterMs };
  }
}
