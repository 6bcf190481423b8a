// pool.call's own crash barrier: `idempotent` / `retry` call options and the `breaker` pool option.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CircuitOpenError, Pool, PoolSaturatedError, WorkerCrashedError } from "../mod.ts";
import { testPoolOptions } from "./_helpers.ts";

const FAULTS = "snakepit_bridge.examples.faults:FaultsAdapter";
const SIGKILL = 9;
const fast = { initialDelayMs: 10, maxDelayMs: 50 };

describe("pool.call with idempotent and retry", () => {
  const withMarker = async (run: (marker: string) => Promise<void>) => {
    const directory = mkdtempSync(join(tmpdir(), "sp-retry-"));
    try {
      await run(join(directory, "calls"));
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  };

  test("an idempotent call survives a SIGKILL of its worker and keeps one correlation id", async () => {
    await withMarker(async (marker) => {
      await using pool = await Pool.start(testPoolOptions({ adapter: FAULTS, retry: fast, restartBackoffMs: 10 }));
      const correlations = new Set<string>();
      pool.on("call:start", (event) => correlations.add(event.correlationId));
      const result = await pool.call("kill_times", { marker, times: 1, signal: SIGKILL }, { idempotent: true, timeoutMs: 10_000 });
      assert.equal(typeof result, "number");
      assert.equal(Number(readFileSync(marker, "utf8")), 2, "ran twice: killed once, then succeeded");
      assert.equal(correlations.size, 1);
    });
  });

  test("without idempotent the crash is reported and the tool ran once", async () => {
    await withMarker(async (marker) => {
      await using pool = await Pool.start(testPoolOptions({ adapter: FAULTS, retry: fast }));
      const error = await pool.call("kill_times", { marker, times: 1, signal: SIGKILL }, { retry: {} }).catch((error) => error);
      assert.ok(error instanceof WorkerCrashedError, String(error));
      assert.equal(Number(readFileSync(marker, "utf8")), 1);
    });
  });

  test("a call that asks for retry is retried after saturation, which never reached Python", async () => {
    await using pool = await Pool.start(testPoolOptions({ maxQueue: 0 }));
    const busy = pool.call("block", { seconds: 0.2 });
    await assert.rejects(pool.call("echo", { value: 1 }, { retry: false }), PoolSaturatedError);
    assert.equal(await pool.call("echo", { value: "eventually" }, { retry: { attempts: 20, ...fast } }), "eventually");
    await busy;
  });

  test("malformed retry options are refused naming the option", async () => {
    await using pool = await Pool.start(testPoolOptions());
    await assert.rejects(pool.call("noop", {}, { retry: { attempts: 0 } }), /options\.retry\.attempts/);
    await assert.rejects(pool.call("noop", {}, { retry: 3 as never }), /options\.retry must be an object of retry options or false, received 3/);
  });
});

describe("the pool's circuit breaker", () => {
  test("opens after its failure threshold and fails fast without reaching Python", async () => {
    const directory = mkdtempSync(join(tmpdir(), "sp-breaker-"));
    try {
      const marker = join(directory, "calls");
      await using pool = await Pool.start(testPoolOptions({
        adapter: FAULTS,
        breaker: { failureThreshold: 2, openMs: 60_000 },
        restartBackoffMs: 10,
      }));
      for (let crash = 0; crash < 2; crash++) {
        await assert.rejects(pool.call("kill_times", { marker, times: 100, signal: SIGKILL }), WorkerCrashedError);
      }
      assert.equal(pool.breaker?.state, "open");
      const callsBefore = Number(readFileSync(marker, "utf8"));
      await assert.rejects(pool.call("kill_times", { marker, times: 100, signal: SIGKILL }), CircuitOpenError);
      assert.equal(Number(readFileSync(marker, "utf8")), callsBefore, "the open circuit kept the call from Python");
      assert.ok(pool.health.snapshot().crashes >= 2, "the health monitor counted the crashes");
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
