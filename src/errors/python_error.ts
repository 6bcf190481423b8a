/**
 * Failures raised by Python code, carried across the process boundary as structured data.
 *
 * @module
 */
import { GrpcStatus, SnakepitError, type SnakepitErrorOptions } from "./snakepit_error.ts";

/** One frame of a Python traceback, innermost last. */
export interface TracebackFrame {
  /** Source file path. */
  file: string;
  /** Line number (1-based). */
  line: number;
  /** Function name. */
  function: string;
  /** The source line, when Python could read it. */
  source: string;
}

/** One link of a Python exception's `__cause__` / `__context__` chain. */
export interface PythonCause {
  /** `"cause"` for `raise ... from ...`, `"context"` for an exception raised while handling. */
  relation: "cause" | "context";
  pythonType: string;
  pythonModule: string;
  message: string;
  frames: TracebackFrame[];
}

/** The codes of `PythonError` and its subclasses. */
export type PythonErrorCode =
  | "python"
  | "unknown_tool"
  | "invalid_arguments"
  | "shape_mismatch"
  | "dtype_mismatch"
  | "device"
  | "out_of_memory";

/** What a Python exception looked like on the worker side. */
export interface PythonErrorInit extends SnakepitErrorOptions {
  pythonType: string;
  pythonModule: string;
  frames?: TracebackFrame[];
  causes?: PythonCause[];
  notes?: string[];
  /** Kind-specific details sent by the worker (shapes, devices, bytes). */
  details?: Record<string, unknown>;
  /** The tool that raised. */
  tool?: string;
  /**
   * Whether the worker classed the exception as transient (`TimeoutError`, `ConnectionError`).
   * Default false. A retry still needs the call to be idempotent: it reached Python.
   */
  retryable?: boolean;
}

/**
 * An exception raised by a Python tool.
 *
 * @example
 * ```ts
 * import { PythonError } from "@snakepit/snakepit";
 * const error = new PythonError("boom", { pythonType: "ValueError", pythonModule: "builtins" });
 * console.log(error.pythonType, error.code); // ValueError python
 * ```
 */
export class PythonError extends SnakepitError {
  readonly code: PythonErrorCode = "python";
  readonly retryable: boolean;
  readonly grpcStatus: number = GrpcStatus.UNKNOWN;
  /** The exception class's qualified name, e.g. `ValueError`. */
  readonly pythonType: string;
  /** The module defining the exception class, e.g. `builtins`. */
  readonly pythonModule: string;
  /** Traceback frames, innermost last. */
  readonly frames: readonly TracebackFrame[];
  /** The `__cause__` / `__context__` chain, nearest first. */
  readonly causes: readonly PythonCause[];
  /** `__notes__` added to the exception. */
  readonly notes: readonly string[];
  /** Kind-specific details from the worker. */
  readonly pythonDetails: Readonly<Record<string, unknown>>;
  /** The tool that raised, when known. */
  readonly tool: string | undefined;

  constructor(message: string, init: PythonErrorInit) {
    super(message, init);
    this.retryable = init.retryable ?? false;
    this.pythonType = init.pythonType;
    this.pythonModule = init.pythonModule;
    this.frames = init.frames ?? [];
    this.causes = init.causes ?? [];
    this.notes = init.notes ?? [];
    this.pythonDetails = init.details ?? {};
    this.tool = init.tool;
  }

  /** The traceback formatted the way Python prints it. */
  get pythonTraceback(): string {
    const lines = ["Traceback (most recent call last):"];
    for (const frame of this.frames) {
      lines.push(`  File "${frame.file}", line ${frame.line}, in ${frame.function}`);
      if (frame.source) lines.push(`    ${frame.source}`);
    }
    lines.push(`${this.pythonType}: ${this.message}`);
    return lines.join("\n");
  }

  protected override details(): Record<string, unknown> {
    return {
      pythonType: this.pythonType,
      pythonModule: this.pythonModule,
      tool: this.tool,
      frames: this.frames,
      causes: this.causes,
      notes: this.notes,
    };
  }
}

/** The worker has no tool of that name. The message lists the tools it has. */
export class UnknownToolError extends PythonError {
  override readonly code = "unknown_tool" as const;
  override readonly grpcStatus: number = GrpcStatus.NOT_FOUND;
}

/** The arguments do not fit the tool's signature (missing, unexpected or mistyped). */
export class InvalidArgumentsError extends PythonError {
  override readonly code = "invalid_arguments" as const;
  override readonly grpcStatus: number = GrpcStatus.INVALID_ARGUMENT;
}
