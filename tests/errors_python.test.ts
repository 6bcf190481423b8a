// Real Python raising each kind, through a real pool: what arrives is the class the kind names,
// with the facts the worker established, and no secret.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  DeviceError,
  DtypeMismatchError,
  OutOfMemoryError,
  Pool,
  PythonError,
  ShapeMismatchError,
  SnakepitError,
  WorkerStartError,
} from "../mod.ts";
import { testPoolOptions } from "./_helpers.ts";

const FAULTS = "snakepit_bridge.examples.faults:FaultsAdapter";

async function failure(pool: Pool, tool: string, args: Record<string, unknown> = {}): Promise<SnakepitError> {
  return await pool.call(tool, args, { correlationId: `c-${tool}` }).then(
    (value) => assert.fail(`${tool} resolved with ${JSON.stringify(value)}`),
    (error) => {
      assert.ok(error instanceof SnakepitError, String(error));
      return error;
    },
  );
}

describe("Python exceptions arrive as typed errors", () => {
  let pool: Pool;
  before(async () => {
    pool = await Pool.start(testPoolOptions({ adapter: FAULTS }));
  });
  after(() => pool.close());

  test("a ValueError is a PythonError with type, message, the raising line and the cause chain", async () => {
    const error = await failure(pool, "value_error", { message: "bad input" });
    assert.equal(error.constructor, PythonError);
    const python = error as PythonError;
    assert.deepEqual([python.code, python.pythonType, python.pythonModule, python.message], ["python", "ValueError", "builtins", "bad input"]);
    assert.equal(python.correlationId, "c-value_error");
    const raising = python.frames.at(-1)!;
    assert.equal(raising.function, "value_error");
    assert.equal(raising.source, "raise ValueError(message) from error");
    assert.match(raising.file, /snakepit_bridge\/examples\/faults\.py$/);
    assert.deepEqual(python.causes.map((cause) => [cause.relation, cause.pythonType, cause.message]), [["cause", "KeyError", "'missing'"]]);
    assert.equal(python.causes[0]!.frames.at(-1)!.source, '{}["missing"]');
    assert.match(python.pythonTraceback, /^Traceback \(most recent call last\):\n {2}File ".*faults\.py", line \d+, in value_error\n/);
    assert.match(python.pythonTraceback, /ValueError: bad input$/);
    assert.equal(python.retryable, false);
  });

  test("numpy's np.dot shape error is a ShapeMismatchError with both shapes", async () => {
    const error = await failure(pool, "dot_shapes");
    assert.ok(error instanceof ShapeMismatchError, String(error));
    assert.deepEqual([error.expected, error.got, error.dimension, error.operation], [[2, 3], [4, 5], 1, "dot"]);
    assert.equal(error.message, "shapes (2,3) and (4,5) not aligned: 3 (dim 1) != 4 (dim 0)");
    assert.equal(error.pythonType, "ValueError");
    assert.equal(error.grpcStatus, 3);
    assert.equal(
      error.suggestion,
      "Check the input shapes (expected a shape compatible with (2, 3), got (4, 5); dimension 1 differs); " +
        "reshape, transpose or slice the input to match",
    );
  });

  test("a numpy broadcast error is a ShapeMismatchError too", async () => {
    const error = await failure(pool, "broadcast_shapes");
    assert.ok(error instanceof ShapeMismatchError);
    assert.deepEqual([error.expected, error.got, error.dimension, error.operation], [[2, 3], [4, 5], 1, "broadcast"]);
    assert.equal(error.message, "operands could not be broadcast together with shapes (2,3) (4,5) ");
  });

  test("a numpy casting error is a DtypeMismatchError", async () => {
    const error = await failure(pool, "dtype_cast");
    assert.ok(error instanceof DtypeMismatchError);
    assert.deepEqual([error.expected, error.got], ["int64", "float64"]);
    assert.equal(error.pythonType, "_UFuncOutputCastingError");
    assert.match(error.pythonModule, /^numpy\./);
    const torch = await failure(pool, "torch_dtype_message");
    assert.ok(torch instanceof DtypeMismatchError);
    assert.deepEqual([torch.expected, torch.got], ["Float", "Double"]);
  });

  test("a CUDA out-of-memory message is an OutOfMemoryError with device and bytes", async () => {
    const error = await failure(pool, "cuda_oom_message");
    assert.ok(error instanceof OutOfMemoryError, String(error));
    assert.deepEqual(
      [error.device, error.requestedBytes, error.totalBytes, error.availableBytes],
      ["cuda:0", 2 * 2 ** 30, Math.trunc(15.78 * 2 ** 30), Math.trunc(1.02 * 2 ** 30)],
    );
    assert.equal(error.pythonType, "RuntimeError");
    assert.equal(error.grpcStatus, 8);
    assert.equal(
      error.suggestion,
      "Reduce the batch size, free cached memory (torch.cuda.empty_cache(), drop unused tensors), or use a device with more memory",
    );
    const typed = await failure(pool, "cuda_oom_typed");
    assert.ok(typed instanceof OutOfMemoryError);
    assert.deepEqual([typed.pythonModule, typed.pythonType], ["torch.cuda", "OutOfMemoryError"]);
  });

  test("a real MemoryError is an OutOfMemoryError on the cpu with the bytes asked for", async () => {
    const error = await failure(pool, "host_oom");
    assert.ok(error instanceof OutOfMemoryError, String(error));
    assert.equal(error.device, "cpu");
    assert.equal(error.requestedBytes, 2 ** 53);
    assert.match(error.message, /^Unable to allocate 8\.00 PiB for an array with shape \(1125899906842624,\)/);
    assert.equal(error.suggestion, "Reduce the batch or array size, process the data in chunks, or give the worker more memory");
    const bare = await failure(pool, "memory_error");
    assert.ok(bare instanceof OutOfMemoryError);
    assert.deepEqual([bare.device, bare.requestedBytes, bare.pythonType], ["cpu", null, "MemoryError"]);
    assert.equal(await pool.call("pid").then((pid) => typeof pid), "number", "the worker survived");
  });

  test("device problems are DeviceErrors", async () => {
    const mismatch = await failure(pool, "device_mismatch");
    assert.ok(mismatch instanceof DeviceError);
    assert.deepEqual([mismatch.reason, mismatch.devices], ["mismatch", ["cuda:0", "cpu"]]);
    const missing = await failure(pool, "device_unavailable");
    assert.ok(missing instanceof DeviceError);
    assert.deepEqual([missing.reason, missing.device, missing.pythonType], ["not_available", "cuda", "AssertionError"]);
  });

  test("an import error names the missing module", async () => {
    const error = await failure(pool, "import_missing");
    assert.equal(error.constructor, PythonError);
    const python = error as PythonError;
    assert.equal(python.pythonType, "ModuleNotFoundError");
    assert.equal(python.pythonDetails.module, "snakepit_no_such_module");
    assert.equal(
      python.suggestion,
      "Install the package that provides module 'snakepit_no_such_module' into the interpreter the pool runs (its pythonPath), or fix the import",
    );
  });

  test("secrets in the message, notes, causes and source lines are redacted", async () => {
    const error = await failure(pool, "leak_secret") as PythonError;
    const everything = JSON.stringify(error.toJSON()) + error.pythonTraceback + error.notes.join();
    for (const secret of ["hunter2", "tok_9f8e7d6c5b4a", "eyJhbGciOi", "sk-live-0123456789"]) {
      assert.ok(!everything.includes(secret), `${secret} leaked`);
    }
    assert.equal(error.message, "login refused: password=[REDACTED] token=[REDACTED]");
    assert.deepEqual(error.notes, ["retried with Authorization: Bearer [REDACTED]"]);
    assert.equal(error.causes[0]!.message, "connect to postgres://app:[REDACTED]@db.internal:5432/main failed");
  });

  test("a deep cause chain is cut at 8 links, nearest first", async () => {
    const error = await failure(pool, "deep_chain", { depth: 20 }) as PythonError;
    assert.equal(error.message, "level 0");
    assert.deepEqual(error.causes.map((cause) => cause.message), ["level 1", "level 2", "level 3", "level 4", "level 5", "level 6", "level 7", "level 8"]);
    assert.ok(error.causes.every((cause) => cause.relation === "cause" && cause.pythonType === "RuntimeError"));
  });

  test("__notes__ arrive as notes", async () => {
    const error = await failure(pool, "with_notes", { notes: ["while loading shard 7", "hint: check the manifest"] }) as PythonError;
    assert.equal(error.pythonType, "KeyError");
    assert.deepEqual(error.notes, ["while loading shard 7", "hint: check the manifest"]);
  });
});

describe("redaction settings travel in the worker's environment", () => {
  test("extra patterns from SNAKEPIT_REDACT_PATTERNS apply", async () => {
    await using pool = await Pool.start(testPoolOptions({ adapter: FAULTS, env: { SNAKEPIT_REDACT_PATTERNS: '["bad \\\\w+"]' } }));
    const error = await failure(pool, "value_error", { message: "bad input here" });
    assert.equal(error.message, "[REDACTED] here");
  });

  test("a malformed setting stops the pool's start with a message naming it", async () => {
    const error = await Pool.start(testPoolOptions({ adapter: FAULTS, env: { SNAKEPIT_REDACT_PATTERNS: '["(unclosed"]' } }))
      .catch((error) => error);
    assert.ok(error instanceof WorkerStartError, String(error));
    assert.match(
      `${error.message}\n${error.exit?.stderrTail ?? ""}`,
      /SNAKEPIT_REDACT_PATTERNS\[0\] is not a valid regular expression \(missing \), unterminated subpattern at position 0\): '\(unclosed'/,
    );
  });
});
