// The taxonomy as a table: every class's code, gRPC status, retryability and place in the
// hierarchy, and what toJSON() gives a log line.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  RegionAccessError,
  CallTimeoutError,
  CancelledError,
  CircuitOpenError,
  ConfigurationError,
  DeviceError,
  DtypeMismatchError,
  type ErrorCode,
  GrpcStatus,
  InvalidArgumentsError,
  NativeError,
  OutOfMemoryError,
  PoolClosedError,
  PoolSaturatedError,
  PythonError,
  QueueTimeoutError,
  SerializationError,
  SessionLostError,
  ShapeMismatchError,
  SnakepitError,
  TransportError,
  UnknownToolError,
  WorkerBusyError,
  WorkerCrashedError,
  WorkerStartError,
} from "../mod.ts";

const python = { pythonType: "ValueError", pythonModule: "builtins" };
const exit = { exitCode: null, signal: "SIGKILL", classification: "killed" as const, stderrTail: "" };

// [error, code, gRPC status, retryable]
const TABLE: Array<[SnakepitError, ErrorCode, number, boolean]> = [
  [new PythonError("x", python), "python", GrpcStatus.UNKNOWN, false],
  [new ShapeMismatchError("x", python), "shape_mismatch", GrpcStatus.INVALID_ARGUMENT, false],
  [new DtypeMismatchError("x", python), "dtype_mismatch", GrpcStatus.INVALID_ARGUMENT, false],
  [new DeviceError("x", python), "device", GrpcStatus.FAILED_PRECONDITION, false],
  [new OutOfMemoryError("x", python), "out_of_memory", GrpcStatus.RESOURCE_EXHAUSTED, false],
  [new UnknownToolError("x", python), "unknown_tool", GrpcStatus.NOT_FOUND, false],
  [new InvalidArgumentsError("x", python), "invalid_arguments", GrpcStatus.INVALID_ARGUMENT, false],
  [new SerializationError("x"), "serialization", GrpcStatus.INVALID_ARGUMENT, false],
  [new PoolSaturatedError("x", { maxQueue: 1 }), "saturated", GrpcStatus.RESOURCE_EXHAUSTED, true],
  [new QueueTimeoutError("x", { queueTimeoutMs: 1 }), "queue_timeout", GrpcStatus.DEADLINE_EXCEEDED, true],
  [new CallTimeoutError("x", { timeoutMs: 1 }), "timeout", GrpcStatus.DEADLINE_EXCEEDED, true],
  [new CancelledError("x"), "cancelled", GrpcStatus.CANCELLED, false],
  [new WorkerStartError("x", { workerId: "w" }), "worker_start", GrpcStatus.FAILED_PRECONDITION, false],
  [new WorkerCrashedError("x", { workerId: "w", exit }), "worker_crashed", GrpcStatus.UNAVAILABLE, true],
  [new WorkerBusyError("x"), "worker_busy", GrpcStatus.RESOURCE_EXHAUSTED, true],
  [new SessionLostError("x", { sessionId: "s", reason: "expired" }), "session_lost", GrpcStatus.FAILED_PRECONDITION, false],
  [new CircuitOpenError("x", { circuit: "c", retryAfterMs: 5 }), "circuit_open", GrpcStatus.UNAVAILABLE, true],
  [new PoolClosedError("x"), "closed", GrpcStatus.UNAVAILABLE, false],
  [new ConfigurationError("x"), "configuration", GrpcStatus.FAILED_PRECONDITION, false],
  [new TransportError("x", { grpcStatus: GrpcStatus.UNAVAILABLE }), "transport", GrpcStatus.UNAVAILABLE, true],
  [new NativeError("x", { op: "map", status: 3, statusName: "bad_args" }), "native", GrpcStatus.INTERNAL, false],
  [new RegionAccessError("x", { reason: "token_invalid" }), "region_access", GrpcStatus.PERMISSION_DENIED, false],
];

describe("the error taxonomy", () => {
  for (const [error, code, grpcStatus, retryable] of TABLE) {
    test(`${error.name} has code ${code}, gRPC status ${grpcStatus} and retryable ${retryable}`, () => {
      assert.ok(error instanceof SnakepitError);
      assert.ok(error instanceof Error);
      assert.equal(error.code, code);
      assert.equal(error.grpcStatus, grpcStatus);
      assert.equal(error.retryable, retryable);
      assert.equal(error.name, error.constructor.name);
      assert.equal(error.toJSON().code, code);
    });
  }

  test("every code of the union has exactly one class in the table", () => {
    const codes = TABLE.map(([, code]) => code);
    assert.equal(new Set(codes).size, codes.length);
    assert.equal(codes.length, 22);
  });

  test("the recognised Python errors are PythonErrors, so one instanceof catches every tool failure", () => {
    for (const error of [
      new ShapeMismatchError("x", python),
      new DtypeMismatchError("x", python),
      new DeviceError("x", python),
      new OutOfMemoryError("x", python),
    ]) {
      assert.ok(error instanceof PythonError, error.name);
      assert.equal(error.pythonType, "ValueError");
    }
    assert.ok(!(new CircuitOpenError("x", { circuit: "c", retryAfterMs: 0 }) instanceof PythonError));
  });

  test("a PythonError is retryable only when the worker said so", () => {
    assert.equal(new PythonError("x", { ...python, retryable: true }).retryable, true);
    assert.equal(new PythonError("x", python).retryable, false);
  });

  test("unknown facts are null, never guesses", () => {
    const shape = new ShapeMismatchError("x", python);
    assert.deepEqual([shape.expected, shape.got, shape.dimension, shape.operation], [null, null, null, null]);
    const memory = new OutOfMemoryError("x", python);
    assert.deepEqual([memory.device, memory.requestedBytes, memory.availableBytes, memory.totalBytes], [null, null, null, null]);
    const device = new DeviceError("x", { ...python, device: "mps" });
    assert.deepEqual([device.reason, device.devices], ["error", ["mps"]]);
  });

  test("toJSON carries each class's facts for structured logs", () => {
    const shape = new ShapeMismatchError("shapes (2,3) and (4,5) not aligned", {
      ...python,
      expected: [2, 3],
      got: [4, 5],
      dimension: 1,
      operation: "dot",
      correlationId: "c-1",
      suggestion: "reshape",
    });
    const json = shape.toJSON();
    assert.equal(json.name, "ShapeMismatchError");
    assert.equal(json.code, "shape_mismatch");
    assert.equal(json.message, "shapes (2,3) and (4,5) not aligned");
    assert.deepEqual([json.expected, json.got, json.dimension, json.operation], [[2, 3], [4, 5], 1, "dot"]);
    assert.equal(json.pythonType, "ValueError");
    assert.equal(json.correlationId, "c-1");
    assert.equal(json.suggestion, "reshape");
    assert.deepEqual(JSON.parse(JSON.stringify(shape)), JSON.parse(JSON.stringify(json)));

    const memory = new OutOfMemoryError("CUDA out of memory", {
      ...python,
      device: "cuda:0",
      requestedBytes: 2 ** 31,
      memoryStats: { allocatedBytes: 1, reservedBytes: 2, maxAllocatedBytes: 3 },
    }).toJSON();
    assert.deepEqual([memory.device, memory.requestedBytes, memory.availableBytes], ["cuda:0", 2 ** 31, null]);
    assert.deepEqual(memory.memoryStats, { allocatedBytes: 1, reservedBytes: 2, maxAllocatedBytes: 3 });

    const open = new CircuitOpenError("open", { circuit: "gpu", retryAfterMs: 250, cause: new WorkerBusyError("busy") }).toJSON();
    assert.deepEqual([open.circuit, open.retryAfterMs, (open.cause as { code: string }).code], ["gpu", 250, "worker_busy"]);
  });

  test("a switch on code is exhaustive over the union", () => {
    // Compiles only while every ErrorCode has a branch: a new code breaks the build here.
    function describeCode(code: ErrorCode): string {
      switch (code) {
        case "python":
        case "shape_mismatch":
        case "dtype_mismatch":
        case "device":
        case "out_of_memory":
        case "unknown_tool":
        case "invalid_arguments":
          return "tool";
        case "serialization":
        case "saturated":
        case "queue_timeout":
        case "timeout":
        case "cancelled":
        case "worker_start":
        case "worker_crashed":
        case "worker_busy":
        case "session_lost":
        case "circuit_open":
        case "closed":
        case "configuration":
        case "transport":
        case "native":
        case "region_access":
          return "pool";
        default: {
          const unreachable: never = code;
          return unreachable;
        }
      }
    }
    assert.deepEqual(TABLE.map(([, code]) => describeCode(code)).filter((kind) => kind === "tool").length, 7);
  });
});
