import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { CallTimeoutError, Pool, PoolSaturatedError, QueueTimeoutError } from "../mod.ts";
import { isAlive, testPoolOptions, waitFor } from "./_helpers.ts";

describe("the bounded queue", () => {
  test("past maxQueue a call rejects with PoolSaturatedError at once", async () => {
    await using pool = await Pool.start(testPoolOptions({ maxQueue: 2 }));
    const running = pool.call("block", { seconds: 0.5 });
    const queued = [pool.call("noop"), pool.call("noop")];
    const started = Date.now();
    const error = await pool.call("noop").catch((error) => error);
    assert.ok(error instanceof PoolSaturatedError, String(error));
    assert.ok(Date.now() - started < 100, "rejected without waiting");
    assert.equal(error.code, "saturated");
    assert.equal(error.maxQueue, 2);
    assert.equal(error.message, 'Cannot call "noop": pool "default" is saturated (2 calls queued, maxQueue 2)');
    await Promise.all([running, ...queued]);
  });

  test("maxQueue 0 rejects whenever no worker is free", async () => {
    await using pool = await Pool.start(testPoolOptions({ maxQueue: 0 }));
    const running = pool.call("block", { seconds: 0.3 });
    await assert.rejects(pool.call("noop"), PoolSaturatedError);
    await running;
    assert.equal(await pool.call("echo", { value: 1 }), 1);
  });

  test("a call that waits past queueTimeoutMs rejects with QueueTimeoutError and never runs", async () => {
    await using pool = await Pool.start(testPoolOptions());
    const running = pool.call("block", { seconds: 0.5 });
    const error = await pool.call("record", { label: "late" }, { queueTimeoutMs: 100 }).catch((error) => error);
    assert.ok(error instanceof QueueTimeoutError, String(error));
    assert.equal(error.queueTimeoutMs, 100);
    assert.equal(error.message, 'Call "record" waited 100 ms for a worker and was dropped without running');
    await running;
    assert.deepEqual(await pool.call("records"), [], "the timed-out call never executed");
  });

  test("an aborted queued call is removed and never runs", async () => {
    await using pool = await Pool.start(testPoolOptions());
    const running = pool.call("block", { seconds: 0.4 });
    const controller = new AbortController();
    const queued = pool.call("record", { label: "aborted" }, { signal: controller.signal });
    controller.abort(new Error("not needed any more"));
    await assert.rejects(queued, /not needed any more/);
    await running;
    assert.deepEqual(await pool.call("records"), []);
    assert.equal(pool.stats().queued, 0);
  });
});

describe("deadlines and cancellation reach Python", () => {
  test("a timeout tells the running tool to cancel (ctx.cancelled) and frees the slot", async () => {
    await using pool = await Pool.start(testPoolOptions());
    const error = await pool.call("wait_cancellable", { label: "t", seconds: 10 }, { timeoutMs: 150 }).catch((error) => error);
    assert.ok(error instanceof CallTimeoutError, String(error));
    await waitFor(async () => (await pool.call<string[]>("records")).includes("t:cancelled"), 5_000, "the tool to see ctx.cancelled");
  });

  test("an abort after dispatch reaches the tool and rejects with signal.reason", async () => {
    await using pool = await Pool.start(testPoolOptions());
    const controller = new AbortController();
    const reason = new Error("user navigated away");
    const call = pool.call("wait_cancellable", { label: "a", seconds: 10 }, { signal: controller.signal });
    setTimeout(() => controller.abort(reason), 100);
    await assert.rejects(call, (error) => error === reason);
    await waitFor(async () => (await pool.call<string[]>("records")).includes("a:cancelled"), 5_000, "the tool to see ctx.cancelled");
  });

  test("a tool that ignores cancellation is killed after cancelGraceMs and its worker replaced", async () => {
    await using pool = await Pool.start(testPoolOptions({ cancelGraceMs: 300 }));
    const [pid] = pool.workerPids;
    const killed: string[] = [];
    pool.on("worker:killed", (event) => killed.push(event.reason));
    await assert.rejects(pool.call("block", { seconds: 30 }, { timeoutMs: 100 }), CallTimeoutError);
    await waitFor(() => !isAlive(pid!), 3_000, "the stubborn worker to be killed");
    assert.deepEqual(killed, ["cancel-grace"]);
    assert.equal(await pool.call("echo", { value: "replaced" }, { timeoutMs: 10_000 }), "replaced");
    assert.notEqual(pool.workerPids[0], pid);
  });
});

describe("concurrency inside a worker", () => {
  test("a thread-safe adapter serves concurrentTasksPerWorker calls at once, overlapping in time", async () => {
    await using pool = await Pool.start(testPoolOptions({ concurrentTasksPerWorker: 4 }));
    const intervals = await Promise.all(Array.from({ length: 4 }, () => pool.call<[number, number]>("block", { seconds: 0.3 })));
    const latestStart = Math.max(...intervals.map(([start]) => start));
    const earliestEnd = Math.min(...intervals.map(([, end]) => end));
    assert.ok(latestStart < earliestEnd, `all four calls ran at the same time (${latestStart} < ${earliestEnd})`);
  });

  test("with one task per worker, calls on one worker run one after another", async () => {
    await using pool = await Pool.start(testPoolOptions({ concurrentTasksPerWorker: 1 }));
    const intervals = await Promise.all(Array.from({ length: 2 }, () => pool.call<[number, number]>("block", { seconds: 0.15 })));
    const [first, second] = intervals.sort((a, b) => a[0] - b[0]);
    assert.ok(second![0] >= first![1] - 0.005, "the second started after the first ended");
  });
});
