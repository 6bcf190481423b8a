import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import pino from "pino";
import { attachLogger, createLogger, newTraceparent, parseTraceparent, Pool, traceIdOf, workerLogSink } from "../mod.ts";
import { testPoolOptions, waitFor } from "./_helpers.ts";

const OPS = "ops_adapter:OpsAdapter";

/** A user's own pino logger that keeps its records in memory. */
function memoryLogger(): { logger: pino.Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void records.push(JSON.parse(line)) });
  return { logger, records };
}

describe("pino logging", () => {
  test("a Python log line arrives in the host's pino output with the call's correlation id", async () => {
    const { logger, records } = memoryLogger();
    await using pool = await Pool.start(testPoolOptions({ adapter: OPS, name: "logs", workerLogs: workerLogSink(logger) }));
    await pool.call("log", { message: "hello from python", level: "warning" }, { correlationId: "corr-123" });
    await waitFor(() => records.some((record) => record.msg === "hello from python"), 5000, "the Python record");
    const record = records.find((entry) => entry.msg === "hello from python")!;
    assert.equal(record.correlationId, "corr-123");
    assert.equal(record.level, 40, "warning maps to pino's warn");
    assert.equal(record.source, "python");
    assert.equal(record.pythonLogger, "ops_adapter");
    assert.match(String(record.workerId), /^logs-/);
  });

  test("an async tool's log record carries the correlation id too", async () => {
    const { logger, records } = memoryLogger();
    await using pool = await Pool.start(testPoolOptions({ adapter: OPS, name: "async-logs", workerLogs: workerLogSink(logger) }));
    await pool.call("log_async", { message: "from the event loop" }, { correlationId: "corr-async" });
    await waitFor(() => records.some((record) => record.msg === "from the event loop"), 5000, "the async record");
    assert.equal(records.find((entry) => entry.msg === "from the event loop")!.correlationId, "corr-async");
  });

  test("a non-JSON stderr line still arrives, as a plain record", async () => {
    const { logger, records } = memoryLogger();
    await using pool = await Pool.start(testPoolOptions({ adapter: OPS, name: "plain", workerLogs: workerLogSink(logger) }));
    await pool.call("say", { text: "not json {" });
    await waitFor(() => records.some((record) => record.msg === "not json {"), 5000, "the plain line");
    const record = records.find((entry) => entry.msg === "not json {")!;
    assert.equal(record.source, "python-stderr");
    assert.equal(record.level, 30);
    assert.equal(record.correlationId, undefined);
  });

  test("the caller's traceparent reaches Python, and Python's records carry the same trace id", async () => {
    const { logger, records } = memoryLogger();
    await using pool = await Pool.start(testPoolOptions({ adapter: OPS, name: "traced", workerLogs: workerLogSink(logger) }));
    const traceparent = newTraceparent();
    const seen = await pool.call<{ traceparent: string; correlation_id: string }>("trace", {}, { traceparent, correlationId: "corr-t" });
    assert.equal(seen.traceparent, traceparent);
    assert.equal(seen.correlation_id, "corr-t");
    await pool.call("log", { message: "traced record" }, { traceparent });
    await waitFor(() => records.some((record) => record.msg === "traced record"), 5000, "the traced record");
    assert.equal(records.find((entry) => entry.msg === "traced record")!.traceId, traceIdOf(traceparent));
    const fresh = await pool.call<{ traceparent: string }>("trace", {});
    assert.ok(parseTraceparent(fresh.traceparent), "without one, the pool starts a new trace");
  });

  test("slow calls past the threshold, failed calls and crashes are logged with correlation ids", async () => {
    const { logger, records } = memoryLogger();
    await using pool = await Pool.start(testPoolOptions({ adapter: OPS, name: "slow", restartBackoffMs: 10 }));
    const detach = attachLogger(pool, { logger, slowCallMs: 250 });
    await pool.call("nap", { seconds: 0.3 }, { correlationId: "corr-slow" });
    await pool.call("nap", { seconds: 0 }, { correlationId: "corr-fast" });
    await assert.rejects(pool.call("nap", { seconds: "x" }, { correlationId: "corr-bad" }));
    const slow = records.find((entry) => entry.msg === "slow call");
    assert.equal(slow?.correlationId, "corr-slow");
    assert.equal(slow?.tool, "nap");
    assert.ok(Number(slow?.runMs) >= 250);
    assert.equal(records.some((entry) => entry.correlationId === "corr-fast"), false, "fast successful calls are not logged");
    assert.equal(records.find((entry) => entry.correlationId === "corr-bad")?.level, 40);
    process.kill(pool.workerPids[0]!, "SIGKILL");
    await waitFor(() => records.some((entry) => entry.msg === "worker crashed"), 5000, "the crash record");
    assert.equal(records.find((entry) => entry.msg === "worker crashed")!.classification, "killed");
    detach();
  });

  test("createLogger writes synchronously: the record is on disk when the call returns", () => {
    const directory = mkdtempSync(join(tmpdir(), "snakepit-logtest-"));
    try {
      const path = join(directory, "log.jsonl");
      const fd = openSync(path, "w");
      const logger = createLogger({ fd, base: { service: "test" } });
      logger.info({ answer: 42 }, "written");
      const record = JSON.parse(readFileSync(path, "utf8").trim());
      closeSync(fd);
      assert.deepEqual([record.msg, record.answer, record.service], ["written", 42, "test"]);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test("invalid logging options fail fast naming the option and the value", () => {
    assert.throws(() => createLogger({ level: "loud" as "info" }), {
      name: "TypeError",
      message: 'Cannot create logger: options.level must be one of trace, debug, info, warn, error, fatal, silent, received "loud"',
    });
    assert.throws(() => workerLogSink({} as pino.Logger), { name: "TypeError", message: /^Cannot create worker log sink/ });
  });

  test("traceparent helpers continue a trace and reject malformed or all-zero ids", () => {
    const root = newTraceparent();
    const child = newTraceparent(root);
    assert.equal(traceIdOf(child), traceIdOf(root));
    assert.notEqual(child, root);
    assert.equal(parseTraceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01"), undefined);
    assert.equal(parseTraceparent("garbage"), undefined);
    assert.notEqual(traceIdOf(newTraceparent("garbage")), undefined, "a bad parent starts a new trace");
  });
});
