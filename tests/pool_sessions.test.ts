import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Pool, SessionLostError, WorkerBusyError } from "../mod.ts";
import { testPoolOptions, waitFor } from "./_helpers.ts";

interface WhoAmI {
  pid: number;
  session_id: string;
}

describe("session affinity", () => {
  test("calls with a sessionId reach the same worker and see its per-session state", async () => {
    await using pool = await Pool.start(testPoolOptions({ size: 3 }));
    const pids = new Set<number>();
    for (let index = 0; index < 6; index++) {
      pids.add((await pool.call<WhoAmI>("whoami", {}, { sessionId: "s1" })).pid);
    }
    assert.equal(pids.size, 1, "every call of the session ran on one worker");
    assert.equal(await pool.call("remember", { key: "k", value: 1 }, { sessionId: "s1" }), null);
    assert.equal(await pool.call("remember", { key: "k", value: 2 }, { sessionId: "s1" }), 1);
    assert.equal(await pool.call("remember", { key: "k", value: 3 }, { sessionId: "other" }), null, "sessions are separate");
    assert.equal(pool.stats().sessions, 2);
  });

  test("strict-fail-fast rejects with WorkerBusyError at once while the session's worker is busy", async () => {
    await using pool = await Pool.start(testPoolOptions({ size: 2, sessionMode: "strict-fail-fast" }));
    const busy = pool.call("block", { seconds: 0.5 }, { sessionId: "s" });
    const started = Date.now();
    const error = await pool.call("noop", {}, { sessionId: "s" }).catch((error) => error);
    assert.ok(error instanceof WorkerBusyError, String(error));
    assert.ok(Date.now() - started < 100, "rejected at once");
    assert.match(error.message, /^Cannot call "noop": session "s"'s worker default-\d+ is busy \(strict-fail-fast\)$/);
    assert.equal(error.retryable, true);
    await busy;
  });

  test("strict-queue waits for the session's worker even when another is free", async () => {
    await using pool = await Pool.start(testPoolOptions({ size: 2 }));
    const home = (await pool.call<WhoAmI>("whoami", {}, { sessionId: "q", sessionMode: "strict-queue" })).pid;
    const busy = pool.call("block", { seconds: 0.3 }, { sessionId: "q", sessionMode: "strict-queue" });
    const next = await pool.call<WhoAmI>("whoami", {}, { sessionId: "q", sessionMode: "strict-queue" });
    assert.equal(next.pid, home);
    await busy;
  });

  test("hint falls back to another worker while the session's worker is busy", async () => {
    await using pool = await Pool.start(testPoolOptions({ size: 2 }));
    const home = (await pool.call<WhoAmI>("whoami", {}, { sessionId: "h" })).pid;
    const busy = pool.call("block", { seconds: 0.3 }, { sessionId: "h" });
    const elsewhere = await pool.call<WhoAmI>("whoami", {}, { sessionId: "h" });
    assert.notEqual(elsewhere.pid, home);
    await busy;
    assert.equal((await pool.call<WhoAmI>("whoami", {}, { sessionId: "h" })).pid, home, "back home once it is free");
  });

  test("a strict session whose worker died says so once with SessionLostError, then starts afresh", async () => {
    await using pool = await Pool.start(testPoolOptions({ size: 2, sessionMode: "strict-queue" }));
    await pool.call("remember", { key: "k", value: "kept" }, { sessionId: "d" });
    const { pid } = await pool.call<WhoAmI>("whoami", {}, { sessionId: "d" });
    process.kill(pid, "SIGKILL");
    await waitFor(() => !pool.workerPids.includes(pid), 2_000, "the pool to notice the exit");
    const error = await pool.call("remember", { key: "k", value: "new" }, { sessionId: "d" }).catch((error) => error);
    assert.ok(error instanceof SessionLostError, String(error));
    assert.equal(error.reason, "worker_exited");
    assert.equal(error.sessionId, "d");
    assert.equal(error.message, 'Session "d" is lost (worker exited); its state is gone. Call again to start a new session');
    assert.equal(await pool.call("remember", { key: "k", value: "new" }, { sessionId: "d" }), null, "a fresh session");
  });

  test("a hint session whose worker died moves silently (hint sessions carry no guarantees)", async () => {
    await using pool = await Pool.start(testPoolOptions({ size: 2 }));
    const { pid } = await pool.call<WhoAmI>("whoami", {}, { sessionId: "m" });
    process.kill(pid, "SIGKILL");
    await waitFor(() => !pool.workerPids.includes(pid), 2_000, "the pool to notice the exit");
    assert.notEqual((await pool.call<WhoAmI>("whoami", {}, { sessionId: "m" })).pid, pid);
  });

  test("a session idle past sessionTtlMs expires: strict calls say so and the state is gone", async () => {
    await using pool = await Pool.start(testPoolOptions({ sessionTtlMs: 150, sessionMode: "strict-queue" }));
    await pool.call("remember", { key: "k", value: 1 }, { sessionId: "ttl" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const error = await pool.call("remember", { key: "k", value: 2 }, { sessionId: "ttl" }).catch((error) => error);
    assert.ok(error instanceof SessionLostError, String(error));
    assert.equal(error.reason, "expired");
    assert.equal(await pool.call("remember", { key: "k", value: 2 }, { sessionId: "ttl" }), null, "same worker, fresh state");
  });

  test("an expired session swept by the housekeeping tick still says so on its next strict call", async () => {
    await using pool = await Pool.start(testPoolOptions({ sessionTtlMs: 100, heartbeatIntervalMs: 50, sessionMode: "strict-queue" }));
    await pool.call("remember", { key: "k", value: 1 }, { sessionId: "swept" });
    await waitFor(() => pool.stats().sessions === 0, 2_000, "the sweep to retire the session");
    const error = await pool.call("noop", {}, { sessionId: "swept" }).catch((error) => error);
    assert.ok(error instanceof SessionLostError, String(error));
    assert.equal(error.reason, "expired");
    assert.equal(await pool.call("remember", { key: "k", value: 2 }, { sessionId: "swept" }), null);
  });

  test("past sessionsMax the least recently used session is evicted", async () => {
    await using pool = await Pool.start(testPoolOptions({ sessionsMax: 2, sessionMode: "strict-queue" }));
    for (const sessionId of ["a", "b", "c"]) await pool.call("noop", {}, { sessionId });
    assert.equal(pool.stats().sessions, 2);
    const error = await pool.call("noop", {}, { sessionId: "a" }).catch((error) => error);
    assert.ok(error instanceof SessionLostError, String(error));
    assert.equal(error.reason, "evicted");
  });
});
