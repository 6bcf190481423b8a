import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Pool, type PoolEventMap, SnakepitError, WorkerStartError } from "../mod.ts";
import { isAlive, testPoolOptions, waitFor, workerPidsWithMarker } from "./_helpers.ts";

function collect<K extends keyof PoolEventMap>(pool: Pool, name: K): Array<PoolEventMap[K]> {
  const events: Array<PoolEventMap[K]> = [];
  pool.on(name, (event) => events.push(event));
  return events;
}

describe("restarts", () => {
  test("a crashed worker is restarted after a back-off that starts at restartBackoffMs", async () => {
    await using pool = await Pool.start(testPoolOptions({ restartBackoffMs: 100 }));
    const restarts = collect(pool, "worker:restart");
    const exits = collect(pool, "worker:exit");
    const [pid] = pool.workerPids;
    process.kill(pid!, "SIGKILL");
    await waitFor(() => pool.workerPids.length === 1 && pool.workerPids[0] !== pid, 5_000, "the replacement");
    assert.equal(exits[0]?.expected, false);
    assert.equal(exits[0]?.classification, "killed");
    assert.deepEqual(restarts.map((event) => event.delayMs), [100]);
    assert.equal(pool.restarts, 1);
  });

  test("back-off doubles per crash in the window, and past restartStormLimit the pool is degraded", async () => {
    await using pool = await Pool.start(testPoolOptions({ restartBackoffMs: 50, restartStormLimit: 2, restartWindowMs: 60_000 }));
    const restarts = collect(pool, "worker:restart");
    const degraded = collect(pool, "pool:degraded");
    for (let crash = 0; crash < 3; crash++) {
      const [pid] = pool.workerPids;
      process.kill(pid!, "SIGKILL");
      await waitFor(() => pool.workerPids.length === 1 && pool.workerPids[0] !== pid, 5_000, `replacement ${crash + 1}`);
    }
    assert.deepEqual(restarts.map((event) => event.delayMs), [50, 100, 200]);
    assert.equal(degraded.length, 1);
    assert.equal(pool.stats().state, "degraded");
  });

  test("the pool recovers from degraded once crashes leave the window", async () => {
    // The window must hold both crashes even when a loaded machine restarts a worker slowly.
    await using pool = await Pool.start(testPoolOptions({
      restartBackoffMs: 10,
      restartStormLimit: 1,
      restartWindowMs: 1_500,
      heartbeatIntervalMs: 50,
    }));
    const degraded = collect(pool, "pool:degraded");
    const recovered = collect(pool, "pool:recovered");
    for (let crash = 0; crash < 2; crash++) {
      const [pid] = pool.workerPids;
      process.kill(pid!, "SIGKILL");
      await waitFor(() => pool.workerPids.length === 1 && pool.workerPids[0] !== pid, 5_000, "a replacement");
    }
    assert.equal(degraded.length, 1, "two crashes inside the window degrade the pool");
    await waitFor(() => recovered.length === 1, 5_000, "pool:recovered");
    assert.equal(pool.stats().state, "running");
  });
});

describe("heartbeat", () => {
  test("a worker that stops answering pings (SIGSTOP) is killed after heartbeatMissesMax and replaced", async () => {
    await using pool = await Pool.start(testPoolOptions({ heartbeatIntervalMs: 100, heartbeatMissesMax: 2 }));
    const missed = collect(pool, "worker:heartbeat-missed");
    const killed = collect(pool, "worker:killed");
    const [pid] = pool.workerPids;
    process.kill(pid!, "SIGSTOP");
    await waitFor(() => !isAlive(pid!), 5_000, "the hung worker to be killed");
    await waitFor(() => pool.workerPids.length === 1, 5_000, "a replacement");
    assert.ok(missed.length >= 2);
    assert.deepEqual(killed.map((event) => event.reason), ["heartbeat"]);
    assert.equal(await pool.call("echo", { value: "ok" }), "ok");
  });

  test("heartbeats report each worker's memory in stats()", async () => {
    await using pool = await Pool.start(testPoolOptions({ heartbeatIntervalMs: 50 }));
    await waitFor(() => pool.stats().workers[0]!.rssBytes > 0, 2_000, "a heartbeat");
    assert.ok(pool.stats().workers[0]!.rssBytes > 1024 * 1024, "a Python process uses more than 1 MiB");
  });
});

describe("recycling", () => {
  test("after maxCallsPerWorker a worker is drained and replaced without failing a call", async () => {
    await using pool = await Pool.start(testPoolOptions({ maxCallsPerWorker: 3, concurrentTasksPerWorker: 2 }));
    const recycled = collect(pool, "worker:recycle");
    const pids = new Set<number>();
    const results = await Promise.all(Array.from({ length: 12 }, async (_, index) => {
      const who = await pool.call<{ pid: number }>("whoami");
      pids.add(who.pid);
      return await pool.call("echo", { value: index });
    }));
    assert.deepEqual(results, Array.from({ length: 12 }, (_, index) => index));
    assert.ok(pids.size >= 3, `calls ran on ${pids.size} successive workers`);
    assert.ok(recycled.every((event) => event.reason === "calls") && recycled.length >= 3);
    await waitFor(() => pool.stats().workers.every((worker) => worker.state === "ready"), 5_000, "old workers to stop");
    assert.ok([...pids].filter(isAlive).length <= 1, "recycled workers exited");
  });

  test("a worker older than maxWorkerAgeMs is replaced", async () => {
    await using pool = await Pool.start(testPoolOptions({ maxWorkerAgeMs: 300, heartbeatIntervalMs: 50 }));
    const [pid] = pool.workerPids;
    await waitFor(() => pool.workerPids.length === 1 && pool.workerPids[0] !== pid, 5_000, "the aged worker's replacement");
    assert.equal(await pool.call("echo", { value: 1 }), 1);
  });

  test("a worker whose RSS passes maxWorkerRssMb is replaced", async () => {
    await using pool = await Pool.start(testPoolOptions({ maxWorkerRssMb: 1, heartbeatIntervalMs: 50 }));
    const recycled = collect(pool, "worker:recycle");
    await waitFor(() => recycled.length > 0, 3_000, "an rss recycle");
    assert.equal(recycled[0]!.reason, "rss");
  });
});

describe("start-up", () => {
  test("minReady resolves start early; the rest arrive; progress events count them", async () => {
    const progress: string[] = [];
    const pool = await Pool.start(testPoolOptions({
      size: 3,
      minReady: 1,
      startConcurrency: 1,
      on: { "pool:progress": (event) => progress.push(`${event.ready}/${event.total}`) },
    }));
    try {
      assert.deepEqual(progress, ["1/3"], "start resolved at the first ready worker");
      assert.equal(pool.workerPids.length, 1, "start concurrency 1: the others start one by one");
      await waitFor(() => pool.workerPids.length === 3, 10_000, "all three workers");
    } finally {
      await pool.close();
    }
  });

  test("a pool whose workers fail rejects at the first failure that makes minReady unreachable", async () => {
    const spawned: string[] = [];
    const started = Date.now();
    const error = await Pool.start(testPoolOptions({
      adapter: "broken_adapter:Anything",
      size: 4,
      startConcurrency: 1,
      instance: "all-fail",
      on: { "worker:spawn": (event) => spawned.push(event.workerId) },
    })).catch((error) => error);
    assert.ok(error instanceof WorkerStartError, String(error));
    assert.ok(Date.now() - started < 3_000);
    assert.deepEqual(spawned, ["default-0"], "the first failure proved minReady unreachable: no more spawns");
    assert.deepEqual(workerPidsWithMarker("all-fail"), []);
  });

  test("a broken pool does not stall a healthy one in the same process", async () => {
    await using healthy = await Pool.start(testPoolOptions({ name: "cpu" }));
    const broken = Pool.start(testPoolOptions({ name: "gpu", adapter: "broken_adapter:Anything", size: 2 }));
    const answers = await Promise.all(Array.from({ length: 20 }, (_, index) => healthy.call("echo", { value: index })));
    assert.equal(answers.length, 20);
    await assert.rejects(broken, WorkerStartError);
    assert.equal(await healthy.call("echo", { value: "still fine" }), "still fine");
  });
});

describe("stats", () => {
  test("stats() counts requests, completions and errors by code, with latency quantiles", async () => {
    await using pool = await Pool.start(testPoolOptions({ size: 2 }));
    await Promise.all(Array.from({ length: 10 }, () => pool.call("noop")));
    await pool.call("no_such_tool").catch(() => {});
    const stats = pool.stats();
    assert.equal(stats.name, "default");
    assert.equal(stats.state, "running");
    assert.equal(stats.readyWorkers, 2);
    assert.equal(stats.requests, 11);
    assert.equal(stats.completed, 10);
    assert.equal(stats.failed, 1);
    assert.deepEqual(stats.errorsByCode, { unknown_tool: 1 });
    assert.equal(stats.runTimeMs.count, 11);
    assert.ok(stats.runTimeMs.p50 > 0 && stats.runTimeMs.p50 <= stats.runTimeMs.p99);
    assert.equal(stats.queueWaitMs.count, 11);
    assert.equal(stats.workers.length, 2);
    assert.ok(stats.workers.every((worker) => worker.state === "ready" && worker.pid && worker.ageMs >= 0));
    assert.equal(stats.workers.reduce((sum, worker) => sum + worker.callsServed, 0), 11);
  });
});

describe("a crash storm under load", () => {
  test("1,000 calls at concurrency 16 with a worker SIGKILLed every 100 ms all settle; the pool ends full", async () => {
    await using pool = await Pool.start(testPoolOptions({
      size: 3,
      concurrentTasksPerWorker: 2,
      restartBackoffMs: 20,
      restartBackoffMaxMs: 200,
      maxQueue: 100,
      instance: "storm",
    }));
    let stop = false;
    const killer = (async () => {
      while (!stop) {
        const pids = pool.workerPids;
        try {
          if (pids.length > 0) process.kill(pids[Math.floor(Math.random() * pids.length)]!, "SIGKILL");
        } catch {
          // ESRCH: that worker died a moment ago (the pool has not seen its exit yet).
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    let next = 0;
    let resolved = 0;
    const failures: Record<string, number> = {};
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < 1000) {
        next += 1;
        try {
          await pool.call("echo", { value: next }, { timeoutMs: 20_000, queueTimeoutMs: 20_000 });
          resolved += 1;
        } catch (error) {
          assert.ok(error instanceof SnakepitError, `every failure is typed: ${error}`);
          failures[error.code] = (failures[error.code] ?? 0) + 1;
        }
      }
    }));
    stop = true;
    await killer;
    const failed = Object.values(failures).reduce((sum, count) => sum + count, 0);
    assert.equal(resolved + failed, 1000, "every call settled");
    assert.ok(resolved > 0);
    await waitFor(() => pool.stats().readyWorkers === 3, 10_000, "the pool back at full size");
    assert.ok(pool.restarts > 0);
    assert.equal(workerPidsWithMarker("storm").length, 3, "no stray worker beside the three");
  });
});
