// Executor: deadline, retry, breaker and monitor composed around attempts. Attempts here are
// plain functions that fail as told; tests/reliability_pool.test.ts drives real workers.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CallTimeoutError,
  CircuitBreaker,
  CircuitOpenError,
  execute,
  Executor,
  type ExecutorEvents,
  type ExecutorOptions,
  HealthMonitor,
  PoolSaturatedError,
  PythonError,
  WorkerCrashedError,
} from "../mod.ts";

const crash = () =>
  new WorkerCrashedError("worker died", {
    workerId: "w0",
    exit: { exitCode: null, signal: "SIGKILL", classification: "killed", stderrTail: "" },
  });
const saturated = () => new PoolSaturatedError("queue full", { maxQueue: 1 });

/** An attempt that throws `failures` in turn, then resolves with the attempt number. */
function scripted(failures: Array<() => Error>) {
  const seen: Array<{ attempt: number; signal: AbortSignal }> = [];
  const attempt = (signal: AbortSignal, number: number) => {
    seen.push({ attempt: number, signal });
    const next = failures.shift();
    return next ? Promise.reject(next()) : Promise.resolve(number);
  };
  return { attempt, seen };
}

function fastExecutor(options: ExecutorOptions = {}) {
  const executor = new Executor({ retry: { initialDelayMs: 1, jitter: "none" }, ...options });
  const retries: Array<ExecutorEvents["retry"]> = [];
  executor.on("retry", (event) => retries.push(event));
  return { executor, retries };
}

describe("executor", () => {
  test("returns the first success, handing each attempt a signal and its number", async () => {
    const { executor } = fastExecutor();
    const { attempt, seen } = scripted([]);
    assert.equal(await executor.run(attempt), 1);
    assert.equal(seen.length, 1);
    assert.ok(seen[0]!.signal instanceof AbortSignal);
  });

  test("retries failures before dispatch even when the call is not idempotent", async () => {
    const { executor, retries } = fastExecutor();
    const { attempt } = scripted([saturated, saturated]);
    assert.equal(await executor.run(attempt, { label: "embed" }), 3);
    assert.deepEqual(retries.map(({ label, attempt, delayMs, error }) => [label, attempt, delayMs, error.code]), [
      ["embed", 1, 1, "saturated"],
      ["embed", 2, 2, "saturated"],
    ]);
  });

  test("a crash of a call that is not idempotent is rethrown as is, after one attempt", async () => {
    const { executor, retries } = fastExecutor();
    const error = crash();
    const { attempt, seen } = scripted([() => error]);
    await assert.rejects(executor.run(attempt), (thrown) => thrown === error);
    assert.equal(seen.length, 1);
    assert.equal(retries.length, 0);
  });

  test("an idempotent call is retried through crashes", async () => {
    const { executor } = fastExecutor();
    const { attempt } = scripted([crash, crash]);
    assert.equal(await executor.run(attempt, { idempotent: true }), 3);
  });

  test("when attempts run out, the last error is thrown", async () => {
    const { executor } = fastExecutor();
    const last = crash();
    const { attempt, seen } = scripted([crash, crash, () => last, crash]);
    await assert.rejects(executor.run(attempt, { idempotent: true }), (thrown) => thrown === last);
    assert.equal(seen.length, 3);
  });

  test("a Python exception is not retried, idempotent or not", async () => {
    const { executor } = fastExecutor();
    const { attempt, seen } = scripted([() => new PythonError("bad", { pythonType: "ValueError", pythonModule: "builtins" })]);
    await assert.rejects(executor.run(attempt, { idempotent: true }), PythonError);
    assert.equal(seen.length, 1);
  });

  test("an attempt that throws synchronously is a failed attempt, not a crash of the executor", async () => {
    const { executor } = fastExecutor();
    let calls = 0;
    const value = await executor.run(() => {
      calls += 1;
      if (calls === 1) throw saturated();
      return Promise.resolve("ok");
    });
    assert.equal(value, "ok");
  });

  test("the deadline aborts a hanging attempt with CallTimeoutError, even one that ignores its signal", async () => {
    const { executor } = fastExecutor({ deadlineMs: 50 });
    let seenSignal: AbortSignal | undefined;
    const started = Date.now();
    const error = await executor.run((signal) => {
      seenSignal = signal;
      return new Promise(() => {});
    }, { label: "embed" }).catch((error) => error);
    assert.ok(error instanceof CallTimeoutError, String(error));
    assert.equal(error.message, 'Call "embed" ran past its 50 ms deadline during attempt 1');
    assert.equal(error.timeoutMs, 50);
    assert.equal(seenSignal?.aborted, true);
    assert.equal(seenSignal?.reason, error);
    assert.ok(Date.now() - started < 2_000);
  });

  test("the deadline is not retried, even for idempotent calls", async () => {
    const { executor } = fastExecutor();
    let attempts = 0;
    const error = await executor.run(() => {
      attempts += 1;
      return new Promise(() => {});
    }, { deadlineMs: 30, idempotent: true }).catch((error) => error);
    assert.ok(error instanceof CallTimeoutError);
    assert.equal(attempts, 1);
  });

  test("a back-off that would end past the deadline gives up at once with the last error", async () => {
    const executor = new Executor({ retry: { initialDelayMs: 10_000, maxDelayMs: 10_000, jitter: "none" }, deadlineMs: 1_000 });
    const started = Date.now();
    await assert.rejects(executor.run(scripted([saturated]).attempt), PoolSaturatedError);
    assert.ok(Date.now() - started < 500, "did not wait for a back-off it could not use");
  });

  test("the caller's abort rejects with its reason, during an attempt or a back-off", async () => {
    const { executor } = fastExecutor();
    const during = new AbortController();
    const reason = new Error("user left");
    const running = executor.run((signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))), {
      signal: during.signal,
    });
    during.abort(reason);
    await assert.rejects(running, (thrown) => thrown === reason);

    const slow = new Executor({ retry: { initialDelayMs: 60_000, maxDelayMs: 60_000, jitter: "none" } });
    const backingOff = new AbortController();
    slow.on("retry", () => backingOff.abort(reason));
    await assert.rejects(slow.run(scripted([saturated]).attempt, { signal: backingOff.signal }), (thrown) => thrown === reason);

    const { attempt, seen } = scripted([]);
    await assert.rejects(executor.run(attempt, { signal: AbortSignal.abort(reason) }), (thrown) => thrown === reason);
    assert.equal(seen.length, 0, "an aborted call never starts");
  });

  test("an open circuit rejects before the attempt runs", async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1 });
    const { executor } = fastExecutor({ breaker });
    breaker.acquire().failure(crash());
    const { attempt, seen } = scripted([]);
    await assert.rejects(executor.run(attempt, { idempotent: true }), CircuitOpenError);
    assert.equal(seen.length, 0);
  });

  test("failures feed the breaker; once it opens mid-retry the call fails fast, caused by the last failure", async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 2, openMs: 60_000 });
    const { executor } = fastExecutor({ breaker, retry: { attempts: 5, initialDelayMs: 1 } });
    const second = crash();
    const { attempt, seen } = scripted([crash, () => second, crash]);
    const error = await executor.run(attempt, { idempotent: true }).catch((error) => error);
    assert.ok(error instanceof CircuitOpenError, String(error));
    assert.equal(error.cause, second);
    assert.equal(seen.length, 2);
    assert.equal(breaker.state, "open");
  });

  test("every attempt's outcome reaches the health monitor", async () => {
    const health = new HealthMonitor({ minCalls: 1, degradedFailureRate: 0.5, unhealthyFailureRate: 0.9 });
    const { executor } = fastExecutor({ health });
    await executor.run(scripted([crash]).attempt, { idempotent: true });
    assert.deepEqual([health.snapshot().failures, health.snapshot().successes, health.status], [1, 1, "degraded"]);
  });

  test("retry: false makes a single attempt; per-call retry options override the executor's one by one", async () => {
    const { executor, retries } = fastExecutor();
    const once = scripted([saturated]);
    await assert.rejects(executor.run(once.attempt, { retry: false }), PoolSaturatedError);
    assert.equal(once.seen.length, 1);
    const many = scripted([saturated, saturated, saturated, saturated]);
    assert.equal(await executor.run(many.attempt, { retry: { attempts: 5 } }), 5);
    assert.deepEqual(retries.map(({ delayMs }) => delayMs), [1, 2, 4, 8], "the executor's delays and jitter were kept");
  });

  test("a caller's abort releases a half-open trial slot without judging the pool", async () => {
    const clock = { now: 0 };
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 10, clock: () => clock.now });
    const { executor } = fastExecutor({ breaker });
    breaker.acquire().failure(crash());
    clock.now = 10;
    const controller = new AbortController();
    const running = executor.run((signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))), {
      signal: controller.signal,
    });
    controller.abort(new Error("user left"));
    await assert.rejects(running, /user left/);
    assert.deepEqual([breaker.state, breaker.snapshot().trialsInFlight], ["half_open", 0]);
  });

  test("execute() runs one call through a one-off executor", async () => {
    assert.equal(await execute(scripted([saturated]).attempt, { retry: { initialDelayMs: 0 } }), 2);
  });

  const badRuns: Array<[unknown, string, typeof TypeError]> = [
    [{ idempotent: "yes" }, 'Cannot run "call": options.idempotent must be a boolean, received "yes"', TypeError],
    [{ deadlineMs: 0 }, 'Cannot run "call": options.deadlineMs must be a positive number of milliseconds, received 0', RangeError],
    [{ signal: {} }, 'Cannot run "call": options.signal must be an AbortSignal, received {}', TypeError],
    [{ retry: true }, 'Cannot run "call": options.retry must be retry options or false, received true', TypeError],
    [{ label: "embed", retry: { attempts: 0 } }, 'Cannot run "embed": options.retry.attempts must be a positive integer, received 0', RangeError],
    [{ tries: 2 }, 'Cannot run "call": options has unknown option(s) "tries"', TypeError],
  ];
  for (const [options, message, kind] of badRuns) {
    test(`run() refuses ${JSON.stringify(options)} with ${kind.name}`, async () => {
      const { executor } = fastExecutor();
      await assert.rejects(executor.run(() => Promise.resolve(1), options as never), (error: unknown) => {
        assert.ok(error instanceof kind, String(error));
        assert.equal((error as Error).message, message);
        return true;
      });
    });
  }

  test("run() refuses an attempt that is not a function", async () => {
    await assert.rejects(new Executor().run("pool.call" as never, { label: "embed" }), {
      name: "TypeError",
      message: 'Cannot run "embed": attempt must be a function (signal, attempt) => Promise, received string',
    });
  });

  const badExecutors: Array<[unknown, string, typeof TypeError]> = [
    [{ breaker: { state: "closed" } }, 'Cannot create executor: options.breaker must be a CircuitBreaker, received {"state":"closed"}', TypeError],
    [{ health: new CircuitBreaker() }, "Cannot create executor: options.health must be a HealthMonitor, received an instance of CircuitBreaker", TypeError],
    [{ retry: { jitter: "some" } }, 'Cannot create executor: options.retry.jitter must be "full" or "none", received "some"', TypeError],
    [{ deadlineMs: 1.5 }, "Cannot create executor: options.deadlineMs must be a whole number of milliseconds, received 1.5", TypeError],
  ];
  for (const [options, message, kind] of badExecutors) {
    test(`new Executor() refuses ${message.split(": ")[1]!.split(" ")[0]}`, () => {
      assert.throws(() => new Executor(options as ExecutorOptions), (error: unknown) => {
        assert.ok(error instanceof kind, String(error));
        assert.equal((error as Error).message, message);
        return true;
      });
    });
  }
});
