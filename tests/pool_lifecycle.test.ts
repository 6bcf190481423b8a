import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CallTimeoutError,
  ConfigurationError,
  Pool,
  PoolClosedError,
  WorkerCrashedError,
  WorkerStartError,
} from "../mod.ts";
import { isAlive, NUMERIC, testPoolOptions, waitFor, workerPidsWithMarker } from "./_helpers.ts";

describe("start-up", () => {
  test("a pool of two starts two live workers and close() leaves none", async () => {
    const pool = await Pool.start(testPoolOptions({ size: 2, instance: "lifecycle-a" }));
    const pids = pool.workerPids;
    assert.equal(pids.length, 2);
    assert.ok(pids.every(isAlive));
    await pool.close();
    assert.ok(pids.every((pid) => !isAlive(pid)), "every worker is gone after close()");
    assert.deepEqual(workerPidsWithMarker("lifecycle-a"), []);
  });

  test("a missing interpreter rejects with ConfigurationError at once", async () => {
    const started = Date.now();
    const error = await Pool.start(testPoolOptions({ pythonPath: "/nonexistent/python3" })).catch((error) => error);
    assert.ok(error instanceof ConfigurationError, String(error));
    assert.equal(
      error.message,
      'Cannot start pool: options.pythonPath is "/nonexistent/python3", which is not an executable file',
    );
    assert.ok(Date.now() - started < 5_000);
  });

  test("an adapter that fails to import rejects with the Python traceback within 5 s, leaving no process", async () => {
    const started = Date.now();
    const error = await Pool.start(testPoolOptions({ adapter: "broken_adapter:Anything", size: 2, instance: "lifecycle-b" }))
      .catch((error) => error);
    assert.ok(error instanceof WorkerStartError, String(error));
    assert.equal(error.code, "worker_start");
    assert.match(error.message, /adapter "broken_adapter:Anything" failed to load: ModuleNotFoundError/);
    assert.match(error.pythonTraceback ?? "", /snakepit_definitely_missing_module/);
    assert.match(error.pythonTraceback ?? "", /Traceback/);
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    assert.deepEqual(workerPidsWithMarker("lifecycle-b"), []);
  });

  test("an adapter whose constructor raises rejects with its message", async () => {
    const error = await Pool.start(testPoolOptions({ adapter: "slow_start_adapter:ExplodingAdapter" }))
      .catch((error) => error);
    assert.ok(error instanceof WorkerStartError, String(error));
    assert.match(error.message, /RuntimeError: adapter constructor exploded on purpose/);
  });

  const badOptions: Array<[string, Record<string, unknown>, RegExp, typeof TypeError]> = [
    ["size 0", { size: 0 }, /^Cannot start pool: options\.size must be a positive integer, received 0$/, RangeError],
    ["size 1.5", { size: 1.5 }, /^Cannot start pool: options\.size must be a positive integer, received 1\.5$/, TypeError],
    ["a malformed adapter", { adapter: "no-colon" }, /options\.adapter must look like "package\.module:ClassName", received "no-colon"/, TypeError],
    ["an unknown option", { sise: 2 }, /options has unknown option\(s\) "sise"/, TypeError],
    ["a bad encoding", { encoding: "xml" }, /options\.encoding must be "msgpack" or "json", received "xml"/, TypeError],
    ["a non-string env value", { env: { A: 1 } }, /options\.env\.A must map names to strings, received 1/, TypeError],
  ];
  for (const [what, overrides, pattern, kind] of badOptions) {
    test(`${what} is refused with a message naming the option and the value`, async () => {
      const error = await Pool.start({ ...testPoolOptions(), ...overrides } as never).catch((error) => error);
      assert.ok(error instanceof kind, String(error));
      assert.match(error.message, pattern);
    });
  }
});

describe("calls", () => {
  test("every call after close() rejects with PoolClosedError; close() is idempotent", async () => {
    const pool = await Pool.start(testPoolOptions());
    await pool.close();
    await pool.close();
    const error = await pool.call("noop").catch((error) => error);
    assert.ok(error instanceof PoolClosedError);
    assert.equal(error.code, "closed");
  });

  test("await using closes the pool at the end of the scope", async () => {
    let pids: number[] = [];
    {
      await using pool = await Pool.start(testPoolOptions());
      pids = pool.workerPids;
      assert.ok(pids.every(isAlive));
    }
    assert.ok(pids.every((pid) => !isAlive(pid)));
  });

  test("a call past its timeoutMs rejects with CallTimeoutError and the worker stops the tool", async () => {
    await using pool = await Pool.start(testPoolOptions({ adapter: NUMERIC }));
    const error = await pool.call("sleep", { seconds: 30 }, { timeoutMs: 200 }).catch((error) => error);
    assert.ok(error instanceof CallTimeoutError, String(error));
    assert.equal(error.timeoutMs, 200);
    // The worker is free again: the cancelled sleep does not hold it for 30 s.
    assert.equal(await pool.call("add", { a: 1, b: 2 }, { timeoutMs: 5_000 }), 3);
  });

  test("an aborted call rejects with the signal's reason", async () => {
    await using pool = await Pool.start(testPoolOptions({ adapter: NUMERIC }));
    const controller = new AbortController();
    const pending = pool.call("sleep", { seconds: 30 }, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("user gave up")), 100);
    await assert.rejects(pending, /user gave up/);
    assert.equal(await pool.call("add", { a: 1, b: 2 }, { timeoutMs: 5_000 }), 3);
  });

  test("an already-aborted signal rejects before anything is sent", async () => {
    await using pool = await Pool.start(testPoolOptions());
    const reason = new Error("never mind");
    await assert.rejects(pool.call("noop", {}, { signal: AbortSignal.abort(reason) }), (error) => error === reason);
  });

  test("malformed call options are refused with the option path", async () => {
    await using pool = await Pool.start(testPoolOptions());
    await assert.rejects(pool.call("noop", {}, { timeoutMs: -1 }), /Cannot call "noop": options\.timeoutMs must be a positive number of milliseconds, received -1/);
    await assert.rejects(pool.call("", {}), TypeError);
    await assert.rejects(pool.call("noop", [] as never), /args must be an object of keyword arguments/);
  });
});

describe("crashes", () => {
  test("a worker that dies mid-call rejects it with WorkerCrashedError and is replaced", async () => {
    await using pool = await Pool.start(testPoolOptions());
    const [pid] = pool.workerPids;
    const error = await pool.call("kill_self", { signal: 9 }).catch((error) => error);
    assert.ok(error instanceof WorkerCrashedError, String(error));
    assert.equal(error.signal, "SIGKILL");
    assert.equal(error.classification, "killed");
    assert.match(error.message, /was killed by SIGKILL while running "kill_self"/);
    await waitFor(() => pool.workerPids.length === 1 && pool.workerPids[0] !== pid, 10_000, "a replacement worker");
    assert.equal(await pool.call("echo", { value: "alive" }), "alive");
  });

  test("os._exit mid-call is classified as a python_error exit with its code", async () => {
    await using pool = await Pool.start(testPoolOptions());
    const error = await pool.call("crash", { code: 7 }).catch((error) => error);
    assert.ok(error instanceof WorkerCrashedError, String(error));
    assert.equal(error.exitCode, 7);
    assert.equal(error.classification, "python_error");
  });

  test("close() kills the workers' own child processes too", async () => {
    const pool = await Pool.start(testPoolOptions());
    const childPid = await pool.call<number>("spawn_child", { seconds: 60 });
    assert.ok(isAlive(childPid));
    await pool.close();
    await waitFor(() => !isAlive(childPid), 2_000, "the worker's child to die");
  });
});
