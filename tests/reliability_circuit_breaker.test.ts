// CircuitBreaker with a fake clock: closed -> open after the threshold, fail fast while open,
// half-open after the open period, closed after successful trials, open again on a failed one.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CancelledError,
  CircuitBreaker,
  type CircuitBreakerOptions,
  CircuitOpenError,
  type CircuitStateChange,
  PythonError,
  TransportError,
  WorkerCrashedError,
} from "../mod.ts";

const crash = new WorkerCrashedError("worker died", {
  workerId: "w0",
  exit: { exitCode: null, signal: "SIGSEGV", classification: "segfault", stderrTail: "" },
});

function breakerWithClock(options: CircuitBreakerOptions = {}) {
  const clock = { now: 1_000 };
  const changes: Array<Pick<CircuitStateChange, "from" | "to" | "reason">> = [];
  const breaker = new CircuitBreaker({ name: "gpu-pool", failureThreshold: 3, openMs: 5_000, clock: () => clock.now, ...options });
  breaker.on("state-change", ({ from, to, reason }) => changes.push({ from, to, reason }));
  return { breaker, clock, changes };
}

function fail(breaker: CircuitBreaker, times: number, error: unknown = crash): void {
  for (let index = 0; index < times; index++) breaker.acquire().failure(error);
}

describe("circuit breaker", () => {
  test("opens after failureThreshold consecutive failures and fails fast with CircuitOpenError", () => {
    const { breaker, clock, changes } = breakerWithClock();
    fail(breaker, 2);
    assert.equal(breaker.state, "closed");
    fail(breaker, 1);
    assert.equal(breaker.state, "open");
    assert.deepEqual(changes, [{ from: "closed", to: "open", reason: "failure_threshold" }]);
    clock.now += 1_500;
    assert.throws(() => breaker.acquire(), (error: unknown) => {
      assert.ok(error instanceof CircuitOpenError);
      assert.equal(error.message, 'Circuit "gpu-pool" is open after 3 consecutive failures (last: worker_crashed); calls fail fast for another 3500 ms');
      assert.deepEqual([error.code, error.circuit, error.retryAfterMs, error.retryable], ["circuit_open", "gpu-pool", 3500, true]);
      assert.equal(error.cause, crash);
      return true;
    });
  });

  test("a success in between resets the count of consecutive failures", () => {
    const { breaker } = breakerWithClock();
    fail(breaker, 2);
    breaker.acquire().success();
    fail(breaker, 2);
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.snapshot().consecutiveFailures, 2);
  });

  test("a Python exception is the worker answering: it resets the count like a success", () => {
    const { breaker } = breakerWithClock();
    fail(breaker, 2);
    breaker.acquire().failure(new PythonError("bad input", { pythonType: "ValueError", pythonModule: "builtins" }));
    fail(breaker, 2);
    assert.equal(breaker.state, "closed");
  });

  test("cancellations and foreign errors neither count nor reset", () => {
    const { breaker } = breakerWithClock();
    fail(breaker, 2);
    breaker.acquire().failure(new CancelledError("caller gave up"));
    breaker.acquire().failure(new Error("not ours"));
    fail(breaker, 1);
    assert.equal(breaker.state, "open");
  });

  test("half-opens after openMs, lets one trial through, and closes on its success", () => {
    const { breaker, clock, changes } = breakerWithClock();
    fail(breaker, 3);
    clock.now += 4_999;
    assert.equal(breaker.state, "open");
    clock.now += 1;
    assert.equal(breaker.state, "half_open");
    const trial = breaker.acquire();
    assert.throws(() => breaker.acquire(), (error: unknown) => {
      assert.ok(error instanceof CircuitOpenError);
      assert.equal(error.message, 'Circuit "gpu-pool" is half-open and its 1 trial call is in flight; call rejected');
      assert.equal(error.retryAfterMs, 0);
      return true;
    });
    trial.success();
    assert.equal(breaker.state, "closed");
    assert.deepEqual(changes.map(({ to, reason }) => `${to}:${reason}`), [
      "open:failure_threshold",
      "half_open:open_period_elapsed",
      "closed:trials_succeeded",
    ]);
    breaker.acquire().success();
  });

  test("a failed trial opens the circuit again for a full period", () => {
    const { breaker, clock, changes } = breakerWithClock();
    fail(breaker, 3);
    clock.now += 5_000;
    breaker.acquire().failure(new TransportError("reset", { grpcStatus: 14 }));
    assert.equal(breaker.state, "open");
    assert.equal(breaker.snapshot().retryAfterMs, 5_000);
    assert.deepEqual(changes.at(-1), { from: "half_open", to: "open", reason: "trial_failed" });
    assert.throws(() => breaker.acquire(), /after 4 consecutive failures \(last: transport\)/);
  });

  test("successThreshold and halfOpenMaxCalls: several trials at once, all needed to close", () => {
    const { breaker, clock } = breakerWithClock({ successThreshold: 2, halfOpenMaxCalls: 2 });
    fail(breaker, 3);
    clock.now += 5_000;
    const first = breaker.acquire();
    const second = breaker.acquire();
    assert.throws(() => breaker.acquire(), /its 2 trial calls are in flight/);
    first.success();
    assert.equal(breaker.state, "half_open");
    second.success();
    assert.equal(breaker.state, "closed");
  });

  test("a permit settles once, and a permit from before a transition settles into nothing", () => {
    const { breaker, clock } = breakerWithClock({ failureThreshold: 1 });
    const late = breaker.acquire();
    const early = breaker.acquire();
    early.failure(crash);
    early.failure(crash);
    assert.equal(breaker.state, "open");
    clock.now += 5_000;
    assert.equal(breaker.state, "half_open");
    late.success(); // acquired while closed: must not close the half-open circuit
    assert.equal(breaker.state, "half_open");
    assert.equal(breaker.snapshot().trialsInFlight, 0);
  });

  test("run() wraps a call and rethrows its error unchanged", async () => {
    const { breaker } = breakerWithClock({ failureThreshold: 1 });
    assert.equal(await breaker.run(() => Promise.resolve(7)), 7);
    await assert.rejects(breaker.run(() => Promise.reject(crash)), (error) => error === crash);
    await assert.rejects(breaker.run(() => Promise.resolve(7)), CircuitOpenError);
  });

  test("reset() closes an open circuit", () => {
    const { breaker, changes } = breakerWithClock({ failureThreshold: 1 });
    fail(breaker, 1);
    breaker.reset();
    assert.equal(breaker.state, "closed");
    assert.deepEqual(changes.at(-1), { from: "open", to: "closed", reason: "reset" });
    assert.deepEqual(breaker.snapshot(), { name: "gpu-pool", state: "closed", consecutiveFailures: 0, trialsInFlight: 0, openedAt: 1_000, retryAfterMs: 0 });
  });

  test("failureCodes choose what counts", () => {
    const { breaker } = breakerWithClock({ failureThreshold: 1, failureCodes: ["python"] });
    breaker.acquire().failure(crash);
    assert.equal(breaker.state, "closed");
    breaker.acquire().failure(new PythonError("bad", { pythonType: "ValueError", pythonModule: "builtins" }));
    assert.equal(breaker.state, "open");
  });

  test("a listener that throws does not break the breaker", () => {
    const { breaker } = breakerWithClock({ failureThreshold: 1 });
    const original = globalThis.queueMicrotask;
    const reported: unknown[] = [];
    globalThis.queueMicrotask = (callback) => {
      try {
        callback();
      } catch (error) {
        reported.push(error);
      }
    };
    try {
      breaker.on("state-change", () => {
        throw new Error("listener bug");
      });
      fail(breaker, 1);
    } finally {
      globalThis.queueMicrotask = original;
    }
    assert.equal(breaker.state, "open");
    assert.equal((reported[0] as Error).message, "listener bug");
  });

  test("subscribing to an unknown event is a TypeError", () => {
    const { breaker } = breakerWithClock();
    assert.throws(() => breaker.on("open" as never, () => {}), {
      name: "TypeError",
      message: 'Cannot subscribe: "open" is not a circuit breaker event; known events: state-change',
    });
    assert.throws(() => breaker.on("state-change", "log" as never), {
      name: "TypeError",
      message: 'Cannot subscribe to "state-change": the listener must be a function, received string',
    });
  });

  const badOptions: Array<[unknown, string, typeof TypeError]> = [
    [{ failureThreshold: 0 }, "Cannot create circuit breaker: options.failureThreshold must be a positive integer, received 0", RangeError],
    [{ successThreshold: 1.5 }, "Cannot create circuit breaker: options.successThreshold must be a positive integer, received 1.5", TypeError],
    [{ openMs: 0 }, "Cannot create circuit breaker: options.openMs must be a positive number of milliseconds, received 0", RangeError],
    [{ halfOpenMaxCalls: "2" }, 'Cannot create circuit breaker: options.halfOpenMaxCalls must be a number, received "2"', TypeError],
    [{ name: "" }, 'Cannot create circuit breaker: options.name must be 1-64 characters, received ""', RangeError],
    [{ failureCodes: ["crash"] }, 'Cannot create circuit breaker: options.failureCodes.0 must list error codes, received "crash"', TypeError],
    [{ clock: Date.now() }, /^Cannot create circuit breaker: options\.clock must be a function, received \d+$/ as unknown as string, TypeError],
    [{ threshold: 3 }, 'Cannot create circuit breaker: options has unknown option(s) "threshold"', TypeError],
  ];
  for (const [options, message, kind] of badOptions) {
    test(`refuses ${JSON.stringify(options)} with ${kind.name}`, () => {
      assert.throws(() => new CircuitBreaker(options as CircuitBreakerOptions), (error: unknown) => {
        assert.ok(error instanceof kind, String(error));
        if (typeof message === "string") assert.equal((error as Error).message, message);
        else assert.match((error as Error).message, message);
        return true;
      });
    });
  }
});
