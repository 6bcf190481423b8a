import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { Hono } from "hono";
import { Pool, TelemetryBus } from "../mod.ts";
import { hardwareComponent, healthRouter, PoolMetrics, pythonEnvironmentComponent, sharedMemoryComponent } from "../health.ts";
import { testPoolOptions, waitFor } from "./_helpers.ts";
import { get, serve } from "../examples/_serve.ts";

describe("health router over real HTTP", () => {
  test("livez, startupz, readyz and healthz answer 200 for a ready pool", async () => {
    await using pool = await Pool.start(testPoolOptions({ name: "probes" }));
    await using server = await serve(healthRouter({ pools: [pool] }).fetch);
    const livez = await get(`${server.url}/livez`);
    assert.deepEqual(livez, { status: 200, text: "ok" });
    assert.equal((await get(`${server.url}/startupz`)).status, 200);
    const readyz = await get(`${server.url}/readyz`);
    assert.equal(readyz.status, 200);
    assert.deepEqual(JSON.parse(readyz.text), { status: "pass" });
    const healthz = await get(`${server.url}/healthz`);
    assert.deepEqual({ status: healthz.status, body: JSON.parse(healthz.text) }, { status: 200, body: { status: "pass" } });
  });

  test("readyz flips to 503 when every worker of a required pool is down, and back to 200 when they return", async () => {
    await using pool = await Pool.start(testPoolOptions({ name: "flips", size: 2, restartBackoffMs: 1500, restartBackoffMaxMs: 1500 }));
    const bus = new TelemetryBus();
    const alerts: string[] = [];
    bus.subscribe((event) => event.name === "health:alert" && alerts.push(`${event.event.component} ${event.event.status}`));
    await using server = await serve(healthRouter({ pools: [pool], cacheMs: 0, bus }).fetch);
    assert.equal((await get(`${server.url}/readyz`)).status, 200);
    for (const pid of pool.workerPids) process.kill(pid, "SIGKILL");
    await waitFor(async () => (await get(`${server.url}/readyz`)).status === 503, 5000, "/readyz to answer 503");
    const healthz = await get(`${server.url}/healthz`);
    assert.equal(healthz.status, 503);
    assert.equal((await get(`${server.url}/livez`)).status, 200, "livez never depends on Python");
    assert.equal((await get(`${server.url}/startupz`)).status, 200, "start-up, once finished, stays finished");
    await waitFor(async () => (await get(`${server.url}/readyz`)).status === 200, 15_000, "/readyz to recover to 200");
    assert.equal(pool.stats().readyWorkers >= 1, true);
    assert.ok(alerts.includes("pool:flips fail"), `the bus heard the pool go down: ${alerts.join(", ")}`);
    assert.match(alerts.at(-1)!, /^pool:flips (warn|pass)$/, "and come back");
  });

  test("a pool with some workers down is degraded but serving: 200 with status warn", async () => {
    await using pool = await Pool.start(testPoolOptions({ name: "degraded", size: 2, restartBackoffMs: 5000, restartBackoffMaxMs: 5000 }));
    await using server = await serve(healthRouter({ pools: [pool], cacheMs: 0 }).fetch);
    process.kill(pool.workerPids[0]!, "SIGKILL");
    await waitFor(() => pool.stats().readyWorkers === 1, 5000, "one worker down");
    const readyz = await get(`${server.url}/readyz`);
    assert.deepEqual({ status: readyz.status, body: JSON.parse(readyz.text) }, { status: 200, body: { status: "warn" } });
  });

  test("results are cached for cacheMs, so probes do not reach the pool again", async () => {
    await using pool = await Pool.start(testPoolOptions({ name: "cached", restartBackoffMs: 5000, restartBackoffMaxMs: 5000 }));
    await using server = await serve(healthRouter({ pools: [pool], cacheMs: 60_000 }).fetch);
    assert.equal((await get(`${server.url}/readyz`)).status, 200);
    process.kill(pool.workerPids[0]!, "SIGKILL");
    await waitFor(() => pool.stats().readyWorkers === 0, 5000, "the worker to be down");
    assert.equal((await get(`${server.url}/readyz`)).status, 200, "the cached verdict is served");
  });

  test("an optional pool that is down warns instead of failing readiness", async () => {
    await using required = await Pool.start(testPoolOptions({ name: "required" }));
    const optional = await Pool.start(testPoolOptions({ name: "optional" }));
    await optional.close();
    const app = healthRouter({ pools: [required, { pool: optional, required: false }], cacheMs: 0 });
    const response = await app.request("/healthz?verbose");
    const report = await response.json();
    assert.equal(response.status, 200);
    assert.equal(report.status, "warn");
    assert.equal(report.components["pool:optional"].status, "fail");
    assert.equal(report.components["pool:optional"].reason, "pool is closed");
  });

  test("an open circuit breaker or a queue at its high-water mark makes the pool not ready", async () => {
    await using pool = await Pool.start(testPoolOptions({ name: "guarded" }));
    const breaker = { name: "guarded", state: "open" as "closed" | "open" | "half_open" };
    const app = healthRouter({ pools: [{ pool, breaker }], cacheMs: 0 });
    let response = await app.request("/healthz?verbose");
    assert.equal(response.status, 503);
    assert.equal((await response.json()).components["pool:guarded"].reason, "circuit breaker is open");
    breaker.state = "half_open";
    assert.equal((await app.request("/readyz")).status, 200);
    breaker.state = "closed";
    const slow = [pool.call("sleep_async", { seconds: 0.5 }).catch(() => {}), pool.call("sleep_async", { seconds: 0.01 }).catch(() => {})];
    const queued = healthRouter({ pools: [{ pool, queueHighWaterMark: 1 }], cacheMs: 0 });
    await waitFor(() => pool.stats().queued >= 1, 2000, "a queued call");
    response = await queued.request("/readyz");
    assert.equal(response.status, 503);
    await Promise.all(slow);
  });

  test("the verbose report lists pools, workers and extra components, behind the token when one is set", async () => {
    await using pool = await Pool.start(testPoolOptions({ name: "verbose" }));
    await using server = await serve(healthRouter({
      pools: [pool],
      token: "s3cret",
      components: {
        hardware: { check: () => ({ status: "pass", details: { cpu: "test" } }) },
        python: { check: () => Promise.reject(new Error("no interpreter")), required: false },
      },
    }).fetch);
    const denied = await get(`${server.url}/healthz?verbose`);
    assert.equal(denied.status, 401);
    assert.equal(JSON.parse(denied.text).components, undefined, "nothing detailed leaks without the token");
    const wrong = await get(`${server.url}/healthz?verbose`, { authorization: "Bearer nope" });
    assert.equal(wrong.status, 401);
    const allowed = await get(`${server.url}/healthz?verbose`, { authorization: "Bearer s3cret" });
    assert.equal(allowed.status, 200);
    const report = JSON.parse(allowed.text);
    assert.equal(report.status, "warn");
    assert.equal(report.components["pool:verbose"].details.workers.length, 1);
    assert.equal(report.components.hardware.status, "pass");
    assert.deepEqual(report.components.python, { status: "fail", reason: "check threw: no interpreter" });
    assert.equal((await get(`${server.url}/healthz`)).status, 200, "the short view needs no token");
  });

  test("the ready-made components report shared memory, the Python environment and hardware", async () => {
    await using pool = await Pool.start(testPoolOptions({ name: "components" }));
    const app = healthRouter({
      pools: [pool],
      components: {
        sharedMemory: sharedMemoryComponent({ required: true }),
        python: pythonEnvironmentComponent({ pythonPath: ".venv/bin/python" }),
        hardware: hardwareComponent(),
      },
    });
    const response = await app.request("/healthz?verbose");
    const report = await response.json();
    assert.equal(response.status, 200, JSON.stringify(report));
    assert.equal(report.components.sharedMemory.status, "pass");
    assert.ok(report.components.sharedMemory.details.freeBytes > 0);
    assert.equal(report.components.python.status, "pass");
    assert.match(report.components.python.details.version, /^3\.\d+\.\d+$/);
    assert.equal(report.components.hardware.details.cpu.threads > 0, true);
    const full = healthRouter({ pools: [pool], components: { sharedMemory: sharedMemoryComponent({ minFreeBytes: Number.MAX_SAFE_INTEGER, required: true }) } });
    const failing = await full.request("/healthz?verbose");
    assert.equal(failing.status, 503, "a required component without room fails readiness");
    assert.match((await failing.json()).components.sharedMemory.reason, /MiB free in \/dev\/shm, under/);
  });

  test("mounts under a prefix in a user's Hono app and serves /metrics", async () => {
    await using pool = await Pool.start(testPoolOptions({ name: "mounted" }));
    const metrics = new PoolMetrics();
    metrics.observe(pool);
    const app = new Hono();
    app.route("/ops", healthRouter({ pools: [pool], metrics }));
    await using server = await serve(app.fetch);
    await pool.call("echo", { value: 1 });
    const response = await fetch(`${server.url}/ops/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    assert.match(await response.text(), /snakepit_calls_total\{pool="mounted",tool="echo",outcome="ok"\} 1/);
    assert.equal((await get(`${server.url}/ops/livez`)).status, 200);
  });

  test("invalid options fail fast naming the option and the value", () => {
    assert.throws(() => healthRouter({ pools: [] }), {
      name: "RangeError",
      message: "Cannot create health router: options.pools must name at least one pool, received []",
    });
    assert.throws(() => healthRouter({ pools: [{} as Pool] }), {
      name: "TypeError",
      message: /^Cannot create health router: options\.pools\.0 must be a Pool or \{ pool, .*received \{\}$/,
    });
    assert.throws(() => healthRouter({ pools: [] as Pool[], cacheMs: -1 } as never), { name: "RangeError" });
  });
});
