// The crash barrier around a real pool whose workers really die: SIGKILL, SIGSEGV and SIGABRT
// sent by the tool to its own worker, and the pool restarting it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CircuitBreaker,
  CircuitOpenError,
  type ExecutorEvents,
  Executor,
  HealthMonitor,
  Pool,
  WorkerCrashedError,
} from "../mod.ts";
import { testPoolOptions } from "./_helpers.ts";

const FAULTS = "snakepit_bridge.examples.faults:FaultsAdapter";
const SIGKILL = 9;

describe("the crash barrier around a real pool", () => {
  let directory: string;
  let markers = 0;
  const marker = () => join(directory, `calls-${markers++}`);
  const callsMade = (path: string) => Number(readFileSync(path, "utf8"));
  // A pool per test: the pool's restart back-off grows with the crashes in its window, and each
  // test starts from none.
  const startPool = () => Pool.start(testPoolOptions({ adapter: FAULTS }));

  before(() => {
    directory = mkdtempSync(join(tmpdir(), "snakepit-reliability-"));
  });
  after(() => {
    rmSync(directory, { recursive: true, force: true });
  });

  test("an idempotent call survives two SIGKILLs of its worker through retry", async () => {
    await using pool = await startPool();
    const executor = new Executor({ retry: { attempts: 4, initialDelayMs: 20, maxDelayMs: 200 } });
    const retries: Array<ExecutorEvents["retry"]> = [];
    executor.on("retry", (event) => retries.push(event));
    const pidBefore = await pool.call("pid");
    const path = marker();
    const result = await executor.run(
      (signal) => pool.call("kill_times", { marker: path, times: 2, signal: SIGKILL }, { signal }),
      { idempotent: true, label: "kill_times" },
    );
    assert.equal(result, 3, "the third attempt ran and survived");
    assert.equal(callsMade(path), 3);
    assert.deepEqual(
      retries.map(({ attempt, error }) => [attempt, error.code, (error as WorkerCrashedError).signal, (error as WorkerCrashedError).classification]),
      [[1, "worker_crashed", "SIGKILL", "killed"], [2, "worker_crashed", "SIGKILL", "killed"]],
    );
    assert.notEqual(await pool.call("pid"), pidBefore, "the worker was replaced");
  });

  test("a call that is not idempotent reports the crash and runs only once", async () => {
    await using pool = await startPool();
    const executor = new Executor({ retry: { attempts: 4, initialDelayMs: 20 } });
    const path = marker();
    const error = await executor.run((signal) => pool.call("kill_times", { marker: path, times: 1, signal: SIGKILL }, { signal }))
      .catch((error) => error);
    assert.ok(error instanceof WorkerCrashedError, String(error));
    assert.deepEqual([error.code, error.signal, error.classification, error.exitCode], ["worker_crashed", "SIGKILL", "killed", null]);
    assert.match(error.message, /was killed by SIGKILL while running "kill_times" \(killed\)$/);
    assert.equal(callsMade(path), 1, "the tool was not run again");
    assert.equal(typeof await pool.call("pid"), "number", "the pool replaced the worker");
  });

  test("the breaker opens after its threshold, fails fast, half-opens and closes", async () => {
    await using pool = await startPool();
    const clock = { now: 0 };
    const breaker = new CircuitBreaker({ name: "faults", failureThreshold: 2, openMs: 10_000, clock: () => clock.now });
    const changes: string[] = [];
    breaker.on("state-change", ({ from, to }) => changes.push(`${from}->${to}`));
    const executor = new Executor({ breaker, retry: { attempts: 1 } });
    const path = marker();
    const crashing = (signal: AbortSignal) => pool.call("kill_times", { marker: path, times: 100, signal: SIGKILL }, { signal });

    for (let index = 0; index < 2; index++) await assert.rejects(executor.run(crashing), WorkerCrashedError);
    assert.equal(breaker.state, "open");

    const started = Date.now();
    const fast = await executor.run(crashing).catch((error) => error);
    assert.ok(fast instanceof CircuitOpenError, String(fast));
    assert.equal(fast.message, 'Circuit "faults" is open after 2 consecutive failures (last: worker_crashed); calls fail fast for another 10000 ms');
    assert.ok(fast.cause instanceof WorkerCrashedError);
    assert.ok(Date.now() - started < 100, "rejected at once");
    assert.equal(callsMade(path), 2, "the open circuit kept the call from the worker");

    clock.now += 10_000;
    assert.equal(breaker.state, "half_open");
    assert.equal(typeof await executor.run((signal) => pool.call("pid", {}, { signal })), "number");
    assert.equal(breaker.state, "closed");
    assert.deepEqual(changes, ["closed->open", "open->half_open", "half_open->closed"]);
  });

  test("the health monitor goes degraded then unhealthy on a crash storm, notes segfaults and aborts, and recovers", async () => {
    await using pool = await startPool();
    const clock = { now: 0 };
    const health = new HealthMonitor({ name: "faults", degradedCrashes: 2, unhealthyCrashes: 4, alertCrashesPerMinute: 3, clock: () => clock.now });
    const statuses: string[] = [];
    const notable: string[] = [];
    const alerts: string[] = [];
    health.on("status-change", ({ from, to }) => statuses.push(`${from}->${to}`));
    health.on("notable-exit", ({ kind }) => notable.push(kind));
    health.on("alert", ({ rule, state }) => alerts.push(`${rule}:${state}`));
    const executor = new Executor({ health, retry: { attempts: 1 } });

    // segfault dereferences address 0 through ctypes; abort calls abort(3): real native deaths.
    for (const tool of ["segfault", "abort", "segfault", "abort"]) {
      clock.now += 1_000;
      const error = await executor.run((signal) => pool.call(tool, {}, { signal })).catch((error) => error);
      assert.ok(error instanceof WorkerCrashedError, String(error));
      health.recordCrash(error);
    }
    assert.deepEqual(notable, ["segfault", "abort", "segfault", "abort"]);
    assert.deepEqual(statuses, ["healthy->degraded", "degraded->unhealthy"]);
    assert.deepEqual(alerts, ["crash_rate:firing"]);
    assert.deepEqual([health.snapshot().crashes, health.snapshot().failures], [4, 4]);

    clock.now += 60_000;
    assert.equal(health.status, "healthy");
    assert.deepEqual(statuses, ["healthy->degraded", "degraded->unhealthy", "unhealthy->healthy"]);
    assert.deepEqual(alerts, ["crash_rate:firing", "crash_rate:resolved"]);
  });
});
