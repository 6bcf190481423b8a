// HealthMonitor with a fake clock: crash storms and failure rates move the status through
// degraded to unhealthy, notable exits are reported, alerts fire and resolve, and it recovers
// once the window has moved past the trouble.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CallTimeoutError,
  CancelledError,
  HealthMonitor,
  type HealthMonitorEvents,
  type HealthMonitorOptions,
  OutOfMemoryError,
  PythonError,
} from "../mod.ts";

function monitorWithClock(options: HealthMonitorOptions = {}) {
  const clock = { now: 0 };
  const monitor = new HealthMonitor({ name: "numeric", clock: () => clock.now, ...options });
  const statuses: string[] = [];
  const notable: Array<HealthMonitorEvents["notable-exit"]> = [];
  const alerts: Array<HealthMonitorEvents["alert"]> = [];
  monitor.on("status-change", ({ from, to }) => statuses.push(`${from}->${to}`));
  monitor.on("notable-exit", (event) => notable.push(event));
  monitor.on("alert", (event) => alerts.push(event));
  return { monitor, clock, statuses, notable, alerts };
}

const timeout = new CallTimeoutError("slow", { timeoutMs: 100 });
const valueError = new PythonError("bad", { pythonType: "ValueError", pythonModule: "builtins" });

describe("health monitor", () => {
  test("starts healthy with empty counts", () => {
    const { monitor } = monitorWithClock();
    assert.equal(monitor.status, "healthy");
    assert.deepEqual(monitor.snapshot(), {
      monitor: "numeric",
      status: "healthy",
      windowMs: 60_000,
      crashes: 0,
      successes: 0,
      failures: 0,
      failureRate: 0,
      notableExits: { segfault: 0, abort: 0, killed: 0, out_of_memory: 0 },
    });
  });

  test("a crash storm makes it degraded at degradedCrashes and unhealthy at unhealthyCrashes", () => {
    const { monitor, clock, statuses } = monitorWithClock({ degradedCrashes: 3, unhealthyCrashes: 6 });
    for (let index = 0; index < 6; index++) {
      clock.now += 1_000;
      monitor.recordCrash({ classification: "killed", workerId: `numeric-${index % 2}` });
      if (index === 1) assert.equal(monitor.status, "healthy");
      if (index === 2) assert.equal(monitor.status, "degraded");
    }
    assert.equal(monitor.status, "unhealthy");
    assert.deepEqual(statuses, ["healthy->degraded", "degraded->unhealthy"]);
    assert.equal(monitor.snapshot().crashes, 6);
  });

  test("it recovers as the crashes leave the window", () => {
    const { monitor, clock, statuses } = monitorWithClock({ degradedCrashes: 1, unhealthyCrashes: 2, windowMs: 10_000, buckets: 10 });
    monitor.recordCrash({ classification: "segfault" });
    clock.now = 5_000;
    monitor.recordCrash({ classification: "segfault" });
    assert.equal(monitor.status, "unhealthy");
    clock.now = 10_500; // the first crash's bucket has left the window
    assert.equal(monitor.status, "degraded");
    clock.now = 15_500;
    assert.equal(monitor.status, "healthy");
    assert.deepEqual(statuses, ["healthy->degraded", "degraded->unhealthy", "unhealthy->degraded", "degraded->healthy"]);
    assert.equal(monitor.history().length, 2, "the history outlives the window");
  });

  test("segfault, abort, SIGKILL and out-of-memory are noted", () => {
    const { monitor, notable } = monitorWithClock();
    monitor.recordCrash({ classification: "segfault", workerId: "w0" });
    monitor.recordCrash({ classification: "abort", workerId: "w1" });
    monitor.recordCrash({ classification: "killed", workerId: "w0" });
    monitor.recordCrash({ classification: "python_error", workerId: "w0" });
    monitor.recordFailure(new OutOfMemoryError("CUDA out of memory", { pythonType: "OutOfMemoryError", pythonModule: "torch.cuda" }));
    assert.deepEqual(notable.map(({ kind, workerId }) => [kind, workerId]), [
      ["segfault", "w0"],
      ["abort", "w1"],
      ["killed", "w0"],
      ["out_of_memory", undefined],
    ]);
    assert.deepEqual(monitor.snapshot().notableExits, { segfault: 1, abort: 1, killed: 1, out_of_memory: 1 });
  });

  test("the failure rate counts once the window holds minCalls calls", () => {
    const { monitor, statuses } = monitorWithClock({ minCalls: 10, degradedFailureRate: 0.2, unhealthyFailureRate: 0.5 });
    for (let index = 0; index < 3; index++) monitor.recordFailure(timeout);
    assert.equal(monitor.status, "healthy", "3 calls are too few to judge");
    for (let index = 0; index < 7; index++) monitor.recordSuccess();
    assert.equal(monitor.status, "degraded");
    assert.equal(monitor.snapshot().failureRate, 0.3);
    for (let index = 0; index < 5; index++) monitor.recordFailure(timeout);
    assert.equal(monitor.status, "unhealthy");
    assert.deepEqual(statuses, ["healthy->degraded", "degraded->unhealthy"]);
  });

  test("Python exceptions count as answered calls and cancellations not at all", () => {
    const { monitor } = monitorWithClock();
    monitor.recordFailure(valueError);
    monitor.recordFailure(new CancelledError("gave up"));
    monitor.recordFailure(new Error("foreign"));
    monitor.recordFailure({ code: "timeout" });
    assert.deepEqual([monitor.snapshot().successes, monitor.snapshot().failures], [1, 1]);
  });

  test("alerts fire past the crash rate and resolve under it", () => {
    const { monitor, clock, alerts } = monitorWithClock({ alertCrashesPerMinute: 2, degradedCrashes: 10, unhealthyCrashes: 20 });
    monitor.recordCrash({ classification: "killed" });
    assert.equal(alerts.length, 0);
    monitor.recordCrash({ classification: "killed" });
    monitor.recordCrash({ classification: "killed" });
    assert.deepEqual(alerts.map(({ rule, state, ratePerMinute, limitPerMinute }) => [rule, state, ratePerMinute, limitPerMinute]), [
      ["crash_rate", "firing", 2, 2],
    ]);
    clock.now = 61_000;
    assert.equal(monitor.status, "healthy");
    assert.deepEqual(alerts.map(({ state }) => state), ["firing", "resolved"]);
  });

  test("a failure-rate alert is off by default and fires when configured", () => {
    const quiet = monitorWithClock();
    for (let index = 0; index < 100; index++) quiet.monitor.recordFailure(timeout);
    assert.equal(quiet.alerts.length, 0);
    const loud = monitorWithClock({ alertFailuresPerMinute: 10, windowMs: 30_000 });
    for (let index = 0; index < 5; index++) loud.monitor.recordFailure(timeout);
    assert.deepEqual(loud.alerts.map(({ rule, ratePerMinute }) => [rule, ratePerMinute]), [["failure_rate", 10]]);
  });

  test("the history is bounded by historyMax, oldest dropped first", () => {
    const { monitor, clock } = monitorWithClock({ historyMax: 3 });
    for (let index = 0; index < 5; index++) {
      clock.now = index;
      monitor.recordCrash({ classification: "killed", workerId: `w${index}` });
    }
    assert.deepEqual(monitor.history().map(({ at, type, what, workerId }) => [at, type, what, workerId]), [
      [2, "crash", "killed", "w2"],
      [3, "crash", "killed", "w3"],
      [4, "crash", "killed", "w4"],
    ]);
  });

  test("a WorkerCrashedError-like report or a pool worker:exit event can be recorded as is", () => {
    const { monitor } = monitorWithClock();
    monitor.recordCrash({ workerId: "w0", exitCode: null, signal: "SIGABRT", classification: "abort" });
    assert.throws(() => monitor.recordCrash({} as never), {
      name: "TypeError",
      message: "Cannot record crash: exit.classification must be a string, received undefined",
    });
  });

  const badOptions: Array<[unknown, string, typeof TypeError]> = [
    [{ windowMs: 10 }, "Cannot create health monitor: options.windowMs must be from 1000 to 86400000 ms, received 10", RangeError],
    [
      { degradedCrashes: 5, unhealthyCrashes: 2 },
      "Cannot create health monitor: options.unhealthyCrashes must be at least options.degradedCrashes (5), received 2",
      RangeError,
    ],
    [
      { degradedFailureRate: 0.6 },
      "Cannot create health monitor: options.degradedFailureRate must be at most options.unhealthyFailureRate (0.5), received 0.6",
      RangeError,
    ],
    [
      { degradedCrashes: 11 },
      "Cannot create health monitor: options.degradedCrashes must be at most options.unhealthyCrashes (10), received 11",
      RangeError,
    ],
    [{ degradedFailureRate: 0 }, "Cannot create health monitor: options.degradedFailureRate must be greater than 0 and at most 1, received 0", RangeError],
    [{ alertCrashesPerMinute: -1 }, "Cannot create health monitor: options.alertCrashesPerMinute must be a positive number or null, received -1", RangeError],
    [{ buckets: 0 }, "Cannot create health monitor: options.buckets must be a positive integer, received 0", RangeError],
    [{ historyMax: 10_001 }, "Cannot create health monitor: options.historyMax must be at most 10000, received 10001", RangeError],
    [{ window: 5 }, 'Cannot create health monitor: options has unknown option(s) "window"', TypeError],
  ];
  for (const [options, message, kind] of badOptions) {
    test(`refuses ${JSON.stringify(options)} with ${kind.name}`, () => {
      assert.throws(() => new HealthMonitor(options as HealthMonitorOptions), (error: unknown) => {
        assert.ok(error instanceof kind, String(error));
        assert.equal((error as Error).message, message);
        return true;
      });
    });
  }
});
