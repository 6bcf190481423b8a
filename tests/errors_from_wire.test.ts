// errorFromWire: each kind becomes its class with its facts, and nothing a worker (or a
// corrupted channel) sends makes it throw.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CancelledError,
  DeviceError,
  DtypeMismatchError,
  errorFromWire,
  OutOfMemoryError,
  PythonError,
  SerializationError,
  ShapeMismatchError,
  SnakepitError,
  UnknownToolError,
  WorkerBusyError,
} from "../mod.ts";
import { encodeValue } from "../src/codec/msgpack.ts";

const context = { tool: "embed", correlationId: "corr-7" };

function payload(overrides: Record<string, unknown> = {}, details?: unknown): Record<string, unknown> {
  return {
    kind: "python",
    python_type: "ValueError",
    python_module: "builtins",
    message: "went wrong",
    frames: [{ file: "/app/tools.py", line: 12, function: "embed", source: "raise ValueError('went wrong')" }],
    causes: [],
    notes: [],
    suggestion: "",
    retryable: false,
    details: details === undefined ? new Uint8Array() : encodeValue(details),
    ...overrides,
  };
}

describe("each kind becomes its class", () => {
  test("shape_mismatch is a ShapeMismatchError with both shapes and the dimension", () => {
    const error = errorFromWire(
      payload({ kind: "shape_mismatch", message: "shapes (2,3) and (4,5) not aligned: 3 (dim 1) != 4 (dim 0)", suggestion: "reshape" }, {
        operation: "dot",
        expected: [2, 3],
        got: [4, 5],
        dimension: 1,
      }),
      context,
    );
    assert.ok(error instanceof ShapeMismatchError);
    assert.ok(error instanceof PythonError);
    assert.deepEqual([error.expected, error.got, error.dimension, error.operation], [[2, 3], [4, 5], 1, "dot"]);
    assert.equal(error.message, "shapes (2,3) and (4,5) not aligned: 3 (dim 1) != 4 (dim 0)");
    assert.equal(error.suggestion, "reshape");
    assert.equal(error.correlationId, "corr-7");
    assert.equal(error.tool, "embed");
    assert.equal(error.pythonDetails.operation, "dot");
  });

  test("dtype_mismatch is a DtypeMismatchError", () => {
    const error = errorFromWire(payload({ kind: "dtype_mismatch" }, { expected: "int64", got: "float64" }), context);
    assert.ok(error instanceof DtypeMismatchError);
    assert.deepEqual([error.expected, error.got, error.dtypes], ["int64", "float64", []]);
    const loop = errorFromWire(payload({ kind: "dtype_mismatch" }, { expected: null, got: null, dtypes: ["<U1", "int64"] }), context);
    assert.deepEqual((loop as DtypeMismatchError).dtypes, ["<U1", "int64"]);
  });

  test("device is a DeviceError with the reason and devices", () => {
    const error = errorFromWire(payload({ kind: "device" }, { reason: "mismatch", device: "cuda:0", devices: ["cuda:0", "cpu"] }), context);
    assert.ok(error instanceof DeviceError);
    assert.deepEqual([error.reason, error.device, error.devices], ["mismatch", "cuda:0", ["cuda:0", "cpu"]]);
  });

  test("out_of_memory is an OutOfMemoryError with bytes, torch statistics and bigint sizes as numbers", () => {
    const error = errorFromWire(
      payload({ kind: "out_of_memory" }, {
        device: "cuda:0",
        requested_bytes: 2 ** 31,
        available_bytes: 1_095_216_660,
        total_bytes: 2n ** 60n,
        memory_stats: { allocated_bytes: 600, reserved_bytes: 800, max_allocated_bytes: 700 },
      }),
      context,
    );
    assert.ok(error instanceof OutOfMemoryError);
    assert.deepEqual([error.device, error.requestedBytes, error.availableBytes, error.totalBytes], ["cuda:0", 2 ** 31, 1_095_216_660, 2 ** 60]);
    assert.deepEqual(error.memoryStats, { allocatedBytes: 600, reservedBytes: 800, maxAllocatedBytes: 700 });
  });

  test("import and python are plain PythonErrors; retryable comes from the worker", () => {
    const missing = errorFromWire(payload({ kind: "import", python_type: "ModuleNotFoundError" }, { module: "torch" }), context);
    assert.equal(missing.constructor, PythonError);
    assert.equal(missing.code, "python");
    assert.equal((missing as PythonError).pythonDetails.module, "torch");
    const transient = errorFromWire(payload({ python_type: "TimeoutError", retryable: true }), context);
    assert.equal(transient.retryable, true);
  });

  test("the bridge's own kinds keep their classes", () => {
    assert.ok(errorFromWire(payload({ kind: "unknown_tool" }), context) instanceof UnknownToolError);
    assert.ok(errorFromWire(payload({ kind: "worker_busy" }), context) instanceof WorkerBusyError);
    assert.ok(errorFromWire(payload({ kind: "deadline_exceeded" }), context) instanceof CancelledError);
    assert.ok(errorFromWire(payload({ kind: "serialization" }), context) instanceof SerializationError);
  });
});

describe("malformed payloads degrade, never throw", () => {
  test("a payload that is not an ErrorPayload is a SerializationError naming the first problem", () => {
    const error = errorFromWire(null, context);
    assert.ok(error instanceof SerializationError);
    assert.equal(
      error.message,
      'Tool "embed" failed, but its error payload was malformed (payload: Expected object, received null); ' +
        "the worker and host may run different protocol versions",
    );
    assert.equal(error.correlationId, "corr-7");
    const badFrame = errorFromWire(payload({ frames: [{ file: "x", line: -1, function: "f", source: "" }] }), context);
    assert.equal(
      badFrame.message,
      'Tool "embed" failed, but its error payload was malformed (frames.0.line: Number must be greater than or equal to 0); ' +
        "the worker and host may run different protocol versions",
    );
  });

  test("an unknown kind from a newer worker is a plain PythonError", () => {
    const error = errorFromWire(payload({ kind: "quantum_decoherence" }), context);
    assert.equal(error.constructor, PythonError);
    assert.equal(error.message, "went wrong");
  });

  test("details that are not msgpack leave the class and null facts", () => {
    const error = errorFromWire(payload({ kind: "shape_mismatch", details: new Uint8Array([0xc1, 0xff, 0x00]) }), context);
    assert.ok(error instanceof ShapeMismatchError);
    assert.deepEqual([error.expected, error.got, error.dimension], [null, null, null]);
  });

  test("mistyped details fields become null one by one", () => {
    const error = errorFromWire(
      payload({ kind: "shape_mismatch" }, { expected: "2x3", got: [4, 5], dimension: 1.5, operation: 7 }),
      context,
    ) as ShapeMismatchError;
    assert.deepEqual([error.expected, error.got, error.dimension, error.operation], [null, [4, 5], null, null]);
    const memory = errorFromWire(payload({ kind: "out_of_memory" }, { device: ["gpu"], requested_bytes: -5, memory_stats: { allocated_bytes: 1 } }), context) as OutOfMemoryError;
    assert.deepEqual([memory.device, memory.requestedBytes, memory.memoryStats], [null, null, null]);
    const device = errorFromWire(payload({ kind: "device" }, [1, 2, 3]), context) as DeviceError;
    assert.deepEqual([device.reason, device.device, device.devices], ["error", null, []]);
  });

  test("a fuzzed payload always yields a SnakepitError", () => {
    let seed = 42;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const junk = (depth: number): unknown => {
      const pick = Math.floor(random() * 9);
      if (depth > 3) return pick;
      switch (pick) {
        case 0:
          return null;
        case 1:
          return random() * 1e9 - 5e8;
        case 2:
          return "s".repeat(Math.floor(random() * 5));
        case 3:
          return [junk(depth + 1), junk(depth + 1)];
        case 4:
          return { kind: junk(depth + 1), message: junk(depth + 1) };
        case 5:
          return new Uint8Array(Array.from({ length: 8 }, () => Math.floor(random() * 256)));
        case 6:
          return payload({ kind: ["shape_mismatch", "out_of_memory", "device", "dtype_mismatch"][Math.floor(random() * 4)] }, junk(depth + 1));
        case 7:
          return payload({ [["frames", "causes", "notes", "retryable", "details"][Math.floor(random() * 5)]!]: junk(depth + 1) });
        default:
          return undefined;
      }
    };
    for (let index = 0; index < 500; index++) {
      const error = errorFromWire(junk(0), context);
      assert.ok(error instanceof SnakepitError, String(error));
    }
  });
});
