/**
 * The error taxonomy: every failure a Snakepit caller can see is a `SnakepitError`.
 *
 * @module
 */
export { type ErrorCode, GrpcStatus, SnakepitError, type SnakepitErrorOptions } from "./snakepit_error.ts";
export {
  InvalidArgumentsError,
  type PythonCause,
  PythonError,
  type PythonErrorCode,
  type PythonErrorInit,
  type TracebackFrame,
  UnknownToolError,
} from "./python_error.ts";
export {
  DeviceError,
  type DeviceErrorInit,
  type DeviceErrorReason,
  DtypeMismatchError,
  type DtypeMismatchInit,
  type MemoryStats,
  OutOfMemoryError,
  type OutOfMemoryInit,
  ShapeMismatchError,
  type ShapeMismatchInit,
} from "./python_error_kinds.ts";
export { RegionAccessError, type RegionAccessErrorOptions, type RegionAccessReason } from "./region_errors.ts";
export { CircuitOpenError, type CircuitOpenErrorOptions } from "./reliability_errors.ts";
export {
  CallTimeoutError,
  CancelledError,
  ConfigurationError,
  type ExitClassification,
  NativeError,
  PoolClosedError,
  PoolSaturatedError,
  QueueTimeoutError,
  SerializationError,
  SessionLostError,
  TransportError,
  type WorkerExit,
  WorkerBusyError,
  WorkerCrashedError,
  WorkerStartError,
} from "./pool_errors.ts";
export { errorFromWire, type WireErrorContext } from "./from_wire.ts";
