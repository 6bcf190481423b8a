import { test } from "node:test";
import assert from "node:assert/strict";
import { type PoolEventMap, Pool } from "../mod.ts";
import { testPoolOptions } from "./_helpers.ts";

test("call:end splits a call's time into encode, transport, Python and decode, and carries the traceparent", async () => {
  await using pool = await Pool.start(testPoolOptions());
  const ends: Array<PoolEventMap["call:end"]> = [];
  const starts: Array<PoolEventMap["call:start"]> = [];
  pool.on("call:end", (event) => ends.push(event));
  pool.on("call:start", (event) => starts.push(event));
  const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const [started, ended] = await pool.call<[number, number]>("block", { seconds: 0.05 }, { traceparent });
  const [end] = ends;
  assert.equal(starts[0]?.traceparent, traceparent);
  assert.equal(end?.traceparent, traceparent);
  const timing = end!.timing!;
  assert.ok(timing, "a unary call that answered has a timing split");
  assert.ok(timing.pythonExecuteMs >= 45 && timing.pythonExecuteMs <= (ended - started) * 1000 + 5, `tool time ${timing.pythonExecuteMs} ms`);
  assert.ok(timing.pythonMs >= timing.pythonExecuteMs);
  for (const part of ["encodeMs", "transportMs", "decodeMs"] as const) assert.ok(timing[part] >= 0 && timing[part] < 50, `${part} ${timing[part]}`);
  assert.ok(Math.abs(timing.transportMs + timing.pythonMs + timing.decodeMs - end!.runMs) < 1, "the parts add up to the run time");
});

test("a failed call has no timing split but still its traceparent", async () => {
  await using pool = await Pool.start(testPoolOptions());
  const ends: Array<PoolEventMap["call:end"]> = [];
  pool.on("call:end", (event) => ends.push(event));
  await pool.call("no_such_tool").catch(() => {});
  assert.equal(ends[0]?.timing, undefined);
  assert.match(ends[0]!.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
});

test("host-side call records carry the same trace id as the call's traceparent", async () => {
  const { default: pino } = await import("pino");
  const { attachLogger } = await import("../mod.ts");
  const records: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void records.push(JSON.parse(line)) });
  await using pool = await Pool.start(testPoolOptions());
  const detach = attachLogger(pool, { logger });
  const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  await pool.call("no_such_tool", {}, { traceparent, correlationId: "corr-trace" }).catch(() => {});
  detach();
  const record = records.find((entry) => entry.correlationId === "corr-trace");
  assert.equal(record?.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
});
