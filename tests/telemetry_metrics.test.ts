import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { Counter, Registry } from "prom-client";
import { Pool, PoolMetrics } from "../mod.ts";
import { testPoolOptions, waitFor } from "./_helpers.ts";

/** Runs `promtool check metrics` on `text`; under CI a missing promtool is a failure, never a skip. */
function promtoolCheck(text: string): { available: boolean; status: number | null; output: string } {
  const result = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  if (result.error) {
    if (process.env.CI === "true") {
      throw new Error("promtool is not installed; `make setup` installs Debian's prometheus package, which provides it");
    }
    return { available: false, status: null, output: String(result.error) };
  }
  return { available: true, status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe("Prometheus metrics", () => {
  test("calls, durations, queue wait, workers and restarts are exported and promtool accepts the exposition", async (t) => {
    await using pool = await Pool.start(testPoolOptions({ name: "metered", adapter: "snakepit_bridge.examples.numeric:NumericAdapter", restartBackoffMs: 10 }));
    const metrics = new PoolMetrics({ sharedMemory: () => ({ bytes: 4096, regions: 2 }) });
    metrics.observe(pool);
    metrics.observeBreaker({ name: "metered", state: "half_open" });
    await pool.call("add", { a: 1, b: 2 });
    await pool.call("add", { a: 3, b: 4 });
    await assert.rejects(pool.call("fail", { message: "on purpose" }));
    process.kill(pool.workerPids[0]!, "SIGKILL");
    await waitFor(() => pool.stats().readyWorkers === 1 && pool.restarts === 1, 5000, "the restart");
    const text = await metrics.metrics();
    assert.match(text, /^snakepit_calls_total\{pool="metered",tool="add",outcome="ok"\} 2$/m);
    assert.match(text, /^snakepit_calls_total\{pool="metered",tool="fail",outcome="python"\} 1$/m);
    assert.match(text, /^snakepit_call_duration_seconds_count\{pool="metered",tool="add"\} 2$/m);
    assert.match(text, /^snakepit_queue_wait_seconds_count\{pool="metered"\} 3$/m);
    assert.match(text, /^snakepit_queue_depth\{pool="metered"\} 0$/m);
    assert.match(text, /^snakepit_workers\{pool="metered",state="ready"\} 1$/m);
    assert.match(text, /^snakepit_worker_restarts_total\{pool="metered",reason="killed"\} 1$/m);
    assert.match(text, /^snakepit_shared_memory_bytes 4096$/m);
    assert.match(text, /^snakepit_shared_memory_regions 2$/m);
    assert.match(text, /^snakepit_circuit_breaker_state\{circuit="metered",state="half_open"\} 1$/m);
    assert.doesNotMatch(text, /worker_id|request_id|correlation/, "no high-cardinality labels");
    const check = promtoolCheck(text);
    if (!check.available) return t.skip("promtool is not installed (run `make setup`)");
    assert.equal(check.status, 0, check.output);
  });

  test("the registry is shareable: the user's own metrics and default process metrics sit beside ours", async (t) => {
    const registry = new Registry();
    const mine = new Counter({ name: "my_app_requests_total", help: "The app's requests.", registers: [registry] });
    mine.inc(3);
    const metrics = new PoolMetrics({ registry, prefix: "pits_", defaultMetrics: true });
    await using pool = await Pool.start(testPoolOptions({ name: "shared" }));
    metrics.observe(pool);
    await pool.call("echo", { value: "x" });
    const text = await registry.metrics();
    assert.match(text, /^my_app_requests_total 3$/m);
    assert.match(text, /^pits_calls_total\{pool="shared",tool="echo",outcome="ok"\} 1$/m);
    assert.match(text, /^pits_process_resident_memory_bytes \d+/m, "default process metrics work on this runtime");
    const check = promtoolCheck(text);
    if (!check.available) return t.skip("promtool is not installed (run `make setup`)");
    // The text parses (exit 1 would mean it did not); the only lint findings allowed are
    // prom-client's own default gauges named *_total (nodejs_active_handles_total and kin).
    const findings = check.output.trim().split("\n").filter((line) => line !== "");
    assert.ok(check.status === 0 || check.status === 3, check.output);
    for (const finding of findings) assert.match(finding, /^pits_nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/);
  });

  test("a closed pool reads as zero workers rather than throwing at scrape time", async () => {
    const metrics = new PoolMetrics();
    const pool = await Pool.start(testPoolOptions({ name: "gone" }));
    metrics.observe(pool);
    await pool.close();
    assert.match(await metrics.metrics(), /^snakepit_workers\{pool="gone",state="ready"\} 0$/m);
  });

  test("invalid options fail fast naming the option and the value", () => {
    assert.throws(() => new PoolMetrics({ prefix: "Bad-Prefix" }), {
      name: "TypeError",
      message: 'Cannot create pool metrics: options.prefix must be snake_case ([a-z_][a-z0-9_]*), received "Bad-Prefix"',
    });
    assert.throws(() => new PoolMetrics({ registry: {} as Registry }), { message: /options\.registry must be a prom-client Registry/ });
  });
});
