/**
 * Python exceptions the worker recognised: shape and dtype mismatches, device problems and out
 * of memory. Each is a `PythonError` (type, module, traceback and causes stay available) with the
 * facts the worker could establish; a fact it could not establish is `null`, never a guess.
 *
 * @module
 */
import { GrpcStatus } from "./snakepit_error.ts";
import { PythonError, type PythonErrorInit } from "./python_error.ts";

/** Facts about a shape mismatch, parsed from numpy's or torch's message. */
export interface ShapeMismatchInit extends PythonErrorInit {
  expected?: readonly number[] | null;
  got?: readonly number[] | null;
  dimension?: number | null;
  operation?: string | null;
}

/**
 * Array shapes that do not fit: `np.dot` of unaligned matrices, operands that cannot broadcast,
 * a reshape to the wrong size.
 *
 * @example
 * ```ts
 * import { ShapeMismatchError } from "@snakepit/snakepit";
 * const error = new ShapeMismatchError("shapes (2,3) and (4,5) not aligned", {
 *   pythonType: "ValueError",
 *   pythonModule: "builtins",
 *   expected: [2, 3],
 *   got: [4, 5],
 *   dimension: 1,
 * });
 * console.log(error.code, error.expected, error.got); // shape_mismatch [ 2, 3 ] [ 4, 5 ]
 * ```
 */
export class ShapeMismatchError extends PythonError {
  override readonly code = "shape_mismatch" as const;
  override readonly grpcStatus: number = GrpcStatus.INVALID_ARGUMENT;
  /** The shape the operation needed (for two operands: the first one's), when known. */
  readonly expected: readonly number[] | null;
  /** The shape it received (for two operands: the second one's), when known. */
  readonly got: readonly number[] | null;
  /** The dimension that does not match, when known. */
  readonly dimension: number | null;
  /** What failed: `"dot"`, `"matmul"`, `"broadcast"`, `"reshape"`, `"assign"`, or null. */
  readonly operation: string | null;

  constructor(message: string, init: ShapeMismatchInit) {
    super(message, init);
    this.expected = init.expected ?? null;
    this.got = init.got ?? null;
    this.dimension = init.dimension ?? null;
    this.operation = init.operation ?? null;
  }

  protected override details(): Record<string, unknown> {
    return { ...super.details(), expected: this.expected, got: this.got, dimension: this.dimension, operation: this.operation };
  }
}

/** Facts about a dtype mismatch. */
export interface DtypeMismatchInit extends PythonErrorInit {
  expected?: string | null;
  got?: string | null;
  dtypes?: readonly string[];
}

/**
 * Element types that do not fit: an unsafe cast, a ufunc with no loop for the operands' dtypes,
 * torch's "expected scalar type Float but found Double".
 *
 * @example
 * ```ts
 * import { DtypeMismatchError } from "@snakepit/snakepit";
 * const error = new DtypeMismatchError("Cannot cast", {
 *   pythonType: "UFuncTypeError",
 *   pythonModule: "numpy",
 *   expected: "int64",
 *   got: "float64",
 * });
 * console.log(error.code, error.expected, error.got); // dtype_mismatch int64 float64
 * ```
 */
export class DtypeMismatchError extends PythonError {
  override readonly code = "dtype_mismatch" as const;
  override readonly grpcStatus: number = GrpcStatus.INVALID_ARGUMENT;
  /** The dtype the operation needed, when known (numpy or torch spelling: `int64`, `Float`). */
  readonly expected: string | null;
  /** The dtype it received, when known. */
  readonly got: string | null;
  /** Every dtype involved, when the message listed them (ufuncs without a matching loop). */
  readonly dtypes: readonly string[];

  constructor(message: string, init: DtypeMismatchInit) {
    super(message, init);
    this.expected = init.expected ?? null;
    this.got = init.got ?? null;
    this.dtypes = init.dtypes ?? [];
  }

  protected override details(): Record<string, unknown> {
    return { ...super.details(), expected: this.expected, got: this.got, dtypes: this.dtypes };
  }
}

/** Why a device failed. */
export type DeviceErrorReason = "not_available" | "mismatch" | "error";

/** Facts about a device error. */
export interface DeviceErrorInit extends PythonErrorInit {
  reason?: DeviceErrorReason;
  device?: string | null;
  devices?: readonly string[];
}

/**
 * A device problem: the device is not available (no GPU, torch without CUDA), tensors on two
 * devices, or the accelerator reported an error.
 *
 * @example
 * ```ts
 * import { DeviceError } from "@snakepit/snakepit";
 * const error = new DeviceError("Expected all tensors to be on the same device", {
 *   pythonType: "RuntimeError",
 *   pythonModule: "builtins",
 *   reason: "mismatch",
 *   device: "cuda:0",
 *   devices: ["cuda:0", "cpu"],
 * });
 * console.log(error.code, error.reason, error.devices.join(" vs ")); // device mismatch cuda:0 vs cpu
 * ```
 */
export class DeviceError extends PythonError {
  override readonly code = "device" as const;
  override readonly grpcStatus: number = GrpcStatus.FAILED_PRECONDITION;
  /** `"not_available"`, `"mismatch"` (tensors on different devices) or `"error"`. */
  readonly reason: DeviceErrorReason;
  /** The device concerned (`"cuda"`, `"cuda:0"`, `"mps"`), when known. */
  readonly device: string | null;
  /** Every device involved (two for a mismatch). */
  readonly devices: readonly string[];

  constructor(message: string, init: DeviceErrorInit) {
    super(message, init);
    this.reason = init.reason ?? "error";
    this.device = init.device ?? null;
    this.devices = init.devices ?? (this.device === null ? [] : [this.device]);
  }

  protected override details(): Record<string, unknown> {
    return { ...super.details(), reason: this.reason, device: this.device, devices: this.devices };
  }
}

/** torch's allocator statistics for the device, sent when torch was loaded in the worker. */
export interface MemoryStats {
  allocatedBytes: number;
  reservedBytes: number;
  maxAllocatedBytes: number;
}

/** Facts about an out-of-memory failure. */
export interface OutOfMemoryInit extends PythonErrorInit {
  device?: string | null;
  requestedBytes?: number | null;
  availableBytes?: number | null;
  totalBytes?: number | null;
  memoryStats?: MemoryStats | null;
}

/**
 * Memory ran out: a CUDA (or MPS) out-of-memory error, or a host `MemoryError`.
 *
 * @example
 * ```ts
 * import { OutOfMemoryError } from "@snakepit/snakepit";
 * const error = new OutOfMemoryError("CUDA out of memory", {
 *   pythonType: "OutOfMemoryError",
 *   pythonModule: "torch.cuda",
 *   device: "cuda:0",
 *   requestedBytes: 2 ** 31,
 * });
 * console.log(error.code, error.device, error.requestedBytes); // out_of_memory cuda:0 2147483648
 * ```
 */
export class OutOfMemoryError extends PythonError {
  override readonly code = "out_of_memory" as const;
  override readonly grpcStatus: number = GrpcStatus.RESOURCE_EXHAUSTED;
  /** `"cpu"` for host memory, else the accelerator (`"cuda:0"`, `"mps"`); null when unknown. */
  readonly device: string | null;
  /** The allocation that failed, in bytes, when known. */
  readonly requestedBytes: number | null;
  /** Free memory on the device (host: `MemAvailable`) when the error was built, when known. */
  readonly availableBytes: number | null;
  /** The device's capacity, when known. */
  readonly totalBytes: number | null;
  /** torch's allocator statistics, when torch was loaded in the worker. */
  readonly memoryStats: MemoryStats | null;

  constructor(message: string, init: OutOfMemoryInit) {
    super(message, init);
    this.device = init.device ?? null;
    this.requestedBytes = init.requestedBytes ?? null;
    this.availableBytes = init.availableBytes ?? null;
    this.totalBytes = init.totalBytes ?? null;
    this.memoryStats = init.memoryStats ?? null;
  }

  protected override details(): Record<string, unknown> {
    return {
      ...super.details(),
      device: this.device,
      requestedBytes: this.requestedBytes,
      availableBytes: this.availableBytes,
      totalBytes: this.totalBytes,
      memoryStats: this.memoryStats,
    };
  }
}
