// RetryPolicy: back-off with full jitter and a cap, retryability from classes and codes, and
// the idempotency rule for calls that may have run.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CallTimeoutError,
  CancelledError,
  CircuitOpenError,
  mayHaveRun,
  PoolSaturatedError,
  PythonError,
  QueueTimeoutError,
  RetryPolicy,
  SerializationError,
  TransportError,
  WorkerBusyError,
  WorkerCrashedError,
  WorkerStartError,
} from "../mod.ts";

const crash = new WorkerCrashedError("worker died", {
  workerId: "w0",
  exit: { exitCode: null, signal: "SIGKILL", classification: "killed", stderrTail: "" },
});
const saturated = new PoolSaturatedError("queue full", { maxQueue: 4 });
const valueError = new PythonError("bad", { pythonType: "ValueError", pythonModule: "builtins" });

describe("back-off", () => {
  test("grows by the multiplier from initialDelayMs and stops at maxDelayMs", () => {
    const policy = new RetryPolicy({ initialDelayMs: 100, multiplier: 2, maxDelayMs: 1_000, jitter: "none" });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((retry) => policy.delayMs(retry)), [100, 200, 400, 800, 1_000, 1_000]);
  });

  test("full jitter spreads each delay uniformly between 0 and the back-off", () => {
    const samples = [0, 0.25, 0.999];
    const policy = new RetryPolicy({ initialDelayMs: 100, maxDelayMs: 10_000, random: () => samples.shift()! });
    assert.deepEqual([policy.delayMs(3), policy.delayMs(3), policy.delayMs(3)], [0, 100, 399]);
  });

  test("a random source outside [0, 1) cannot produce negative or oversized delays", () => {
    assert.equal(new RetryPolicy({ initialDelayMs: 100, random: () => -3 }).delayMs(1), 0);
    assert.equal(new RetryPolicy({ initialDelayMs: 100, random: () => 7 }).delayMs(1), 100);
    assert.equal(new RetryPolicy({ initialDelayMs: 100, random: () => Number.NaN }).delayMs(1), 0);
  });

  test("defaults are 3 attempts, 100 ms doubling to 5 s, full jitter", () => {
    const policy = new RetryPolicy();
    assert.deepEqual([policy.attempts, policy.initialDelayMs, policy.multiplier, policy.maxDelayMs, policy.jitter], [3, 100, 2, 5_000, "full"]);
  });
});

describe("decisions", () => {
  const policy = new RetryPolicy({ attempts: 3, jitter: "none", initialDelayMs: 10 });

  test("a crash is retried only when the call is idempotent", () => {
    assert.deepEqual(policy.decide(crash, 1, true), { retry: true, delayMs: 10 });
    assert.deepEqual(policy.decide(crash, 1, false), { retry: false, reason: "not_idempotent" });
  });

  test("timeouts and transport failures may have run, so they need idempotency too", () => {
    for (const error of [new CallTimeoutError("slow", { timeoutMs: 5 }), new TransportError("reset", { grpcStatus: 14 })]) {
      assert.equal(mayHaveRun(error), true);
      assert.deepEqual(policy.decide(error, 1, false), { retry: false, reason: "not_idempotent" });
      assert.equal(policy.decide(error, 1, true).retry, true);
    }
  });

  test("failures before dispatch are retried even when the call is not idempotent", () => {
    for (const error of [
      saturated,
      new QueueTimeoutError("waited", { queueTimeoutMs: 5 }),
      new WorkerBusyError("busy"),
      new CircuitOpenError("open", { circuit: "c", retryAfterMs: 5 }),
    ]) {
      assert.equal(mayHaveRun(error), false, error.name);
      assert.deepEqual(policy.decide(error, 1, false), { retry: true, delayMs: 10 }, error.name);
    }
    // A worker that cannot start never ran the tool, but its class says a retry will not help.
    assert.equal(mayHaveRun(new WorkerStartError("no", { workerId: "w" })), false);
    assert.deepEqual(policy.decide(new WorkerStartError("no", { workerId: "w" }), 1, false), { retry: false, reason: "not_retryable" });
  });

  test("errors whose class is not retryable are never retried", () => {
    for (const error of [valueError, new SerializationError("bad"), new CancelledError("stop")]) {
      assert.deepEqual(policy.decide(error, 1, true), { retry: false, reason: "not_retryable" });
    }
  });

  test("a transient Python exception is retried when idempotent", () => {
    const timeout = new PythonError("timed out", { pythonType: "TimeoutError", pythonModule: "builtins", retryable: true });
    assert.equal(policy.decide(timeout, 1, true).retry, true);
    assert.deepEqual(policy.decide(timeout, 1, false), { retry: false, reason: "not_idempotent" });
  });

  test("anything that is not a SnakepitError is never retried", () => {
    assert.deepEqual(policy.decide(new TypeError("bad argument"), 1, true), { retry: false, reason: "not_snakepit_error" });
    assert.deepEqual(policy.decide("aborted", 1, true), { retry: false, reason: "not_snakepit_error" });
  });

  test("no attempt past `attempts`", () => {
    assert.equal(policy.decide(crash, 2, true).retry, true);
    assert.deepEqual(policy.decide(crash, 3, true), { retry: false, reason: "attempts_exhausted" });
    assert.deepEqual(new RetryPolicy({ attempts: 1 }).decide(saturated, 1, true), { retry: false, reason: "attempts_exhausted" });
  });

  test("retryOn replaces the classes' own retryability, by code", () => {
    const onlyCrashes = new RetryPolicy({ retryOn: ["worker_crashed", "python"], jitter: "none" });
    assert.equal(onlyCrashes.decide(crash, 1, true).retry, true);
    assert.equal(onlyCrashes.decide(valueError, 1, true).retry, true);
    assert.deepEqual(onlyCrashes.decide(saturated, 1, true), { retry: false, reason: "not_retryable" });
  });

  test("the decision ignores the message: two crashes with different texts decide alike", () => {
    const other = new WorkerCrashedError("please do not retry this", {
      workerId: "w1",
      exit: { exitCode: 1, signal: null, classification: "python_error", stderrTail: "retry" },
    });
    assert.deepEqual(policy.decide(other, 1, true), policy.decide(crash, 1, true));
  });
});

describe("options are validated", () => {
  const cases: Array<[string, unknown, string, typeof TypeError]> = [
    ["attempts 0", { attempts: 0 }, "Cannot create retry policy: options.attempts must be a positive integer, received 0", RangeError],
    ["attempts 101", { attempts: 101 }, "Cannot create retry policy: options.attempts must be at most 100, received 101", RangeError],
    ["attempts 2.5", { attempts: 2.5 }, "Cannot create retry policy: options.attempts must be a positive integer, received 2.5", TypeError],
    ["a negative delay", { initialDelayMs: -1 }, "Cannot create retry policy: options.initialDelayMs must not be negative, received -1", RangeError],
    [
      "a cap below the initial delay",
      { initialDelayMs: 500, maxDelayMs: 100 },
      "Cannot create retry policy: options.maxDelayMs must be at least options.initialDelayMs (500), received 100",
      RangeError,
    ],
    [
      "an initial delay above the default cap",
      { initialDelayMs: 6_000 },
      "Cannot create retry policy: options.initialDelayMs must be at most options.maxDelayMs (5000), received 6000",
      RangeError,
    ],
    ["multiplier 0.5", { multiplier: 0.5 }, "Cannot create retry policy: options.multiplier must be from 1 to 10, received 0.5", RangeError],
    ["an unknown jitter", { jitter: "half" }, 'Cannot create retry policy: options.jitter must be "full" or "none", received "half"', TypeError],
    ["an unknown code", { retryOn: ["worker_crashed", "oops"] }, 'Cannot create retry policy: options.retryOn.1 must list error codes, received "oops"', TypeError],
    ["retryOn not an array", { retryOn: "timeout" }, 'Cannot create retry policy: options.retryOn must be an array of error codes, received "timeout"', TypeError],
    ["random not a function", { random: 4 }, "Cannot create retry policy: options.random must be a function, received 4", TypeError],
    ["an unknown option", { tries: 3 }, 'Cannot create retry policy: options has unknown option(s) "tries"', TypeError],
    ["options not an object", 3, "Cannot create retry policy: options must be an object, received 3", TypeError],
  ];
  for (const [what, options, message, kind] of cases) {
    test(`${what} is refused with ${kind.name}`, () => {
      assert.throws(() => new RetryPolicy(options as never), (error: unknown) => {
        assert.ok(error instanceof kind, String(error));
        assert.equal((error as Error).message, message);
        return true;
      });
    });
  }
});
