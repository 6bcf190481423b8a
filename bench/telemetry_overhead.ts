// Telemetry overhead: calls/s of one pool with telemetry off and on (Prometheus metrics observing
// the pool, the pino logger attached with slow-call logging, writing synchronously to /dev/null),
// in alternating rounds of the same run so machine noise falls on both alike.
// Run: `bun run bench/telemetry_overhead.ts` / `deno run -A bench/telemetry_overhead.ts`.
import { closeSync, openSync } from "node:fs";
import process from "node:process";
import { attachLogger, createLogger, Pool, PoolMetrics } from "../mod.ts";
import { printTable, quantile, RUNTIME, sequentialLatenciesUs, throughput } from "./_stats.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 3000);
const CONCURRENCY = 32;
const TARGET_OVERHEAD_PERCENT = 1;

const pool = await Pool.start({
  adapter: "snakepit_bridge.examples.echo:EchoAdapter",
  size: 1,
  concurrentTasksPerWorker: CONCURRENCY,
  workerLogs: "silent",
});
const devNull = openSync("/dev/null", "w");
const metrics = new PoolMetrics();
const logger = createLogger({ fd: devNull });
const enable = () => {
  const stopMetrics = metrics.observe(pool);
  const stopLogging = attachLogger(pool, { logger, slowCallMs: 1000 });
  return () => (stopMetrics(), stopLogging());
};

try {
  const call = () => pool.call("noop");
  await throughput(call, CONCURRENCY, CALLS_PER_ROUND); // warm-up
  const results = { off: [] as number[], on: [] as number[], offSequential: [] as number[], onSequential: [] as number[] };
  console.log(`telemetry overhead on ${RUNTIME}: ${ROUNDS} alternating rounds of ${CALLS_PER_ROUND} no-op calls at concurrency ${CONCURRENCY}, and sequential; one worker\n`);
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first, so neither always runs on a warmer machine.
    for (const mode of round % 2 === 0 ? ["off", "on"] as const : ["on", "off"] as const) {
      const disable = mode === "on" ? enable() : undefined;
      results[mode].push(await throughput(call, CONCURRENCY, CALLS_PER_ROUND));
      const latencies = await sequentialLatenciesUs(call, Math.floor(CALLS_PER_ROUND / 3), 50);
      results[mode === "on" ? "onSequential" : "offSequential"].push(1e6 / quantile(latencies, 0.5));
      disable?.();
    }
  }
  const median = (values: number[]) => quantile(values, 0.5);
  const overhead = (off: number, on: number) => ((off - on) / off) * 100;
  const concurrentOff = median(results.off), concurrentOn = median(results.on);
  const sequentialOff = median(results.offSequential), sequentialOn = median(results.onSequential);
  printTable(["workload", "telemetry off (baseline) calls/s", "telemetry on calls/s", "overhead", `target < ${TARGET_OVERHEAD_PERCENT}%`], [
    [`concurrency ${CONCURRENCY}`, concurrentOff.toFixed(0), concurrentOn.toFixed(0), `${overhead(concurrentOff, concurrentOn).toFixed(2)}%`, overhead(concurrentOff, concurrentOn) < TARGET_OVERHEAD_PERCENT ? "met" : "MISSED"],
    ["sequential (1/median latency)", sequentialOff.toFixed(0), sequentialOn.toFixed(0), `${overhead(sequentialOff, sequentialOn).toFixed(2)}%`, overhead(sequentialOff, sequentialOn) < TARGET_OVERHEAD_PERCENT ? "met" : "MISSED"],
  ]);
  // Calls/s differ by a few percent between identical rounds on a small machine, more than the
  // telemetry costs; so the listeners' own cost per call is also measured directly, on synthetic
  // events, and set against the time one call takes.
  const listenerUs = listenerCostPerCallUs();
  const callUs = 1e6 / concurrentOff;
  console.log(`\nlisteners' own cost: ${listenerUs.toFixed(2)} µs per call (metrics + logger), ` +
    `${((listenerUs / callUs) * 100).toFixed(2)}% of a call at ${concurrentOff.toFixed(0)} calls/s (${callUs.toFixed(0)} µs per call)`);
  const scraped = await metrics.metrics();
  console.log(`\n(${/snakepit_calls_total\{[^}]*\} (\d+)/.exec(scraped)?.[1] ?? 0} calls counted while on; negative overhead is noise)`);
} finally {
  await pool.close();
  closeSync(devNull);
}

/** Microseconds the metrics and logger listeners take per call, measured on synthetic events. */
function listenerCostPerCallUs(): number {
  const listeners = new Map<string, Array<(event: unknown) => void>>();
  const fakePool = {
    name: "bench",
    closed: false,
    on(name: string, listener: (event: unknown) => void) {
      listeners.set(name, [...(listeners.get(name) ?? []), listener]);
      return () => {};
    },
  } as unknown as Pool;
  new PoolMetrics().observe(fakePool);
  attachLogger(fakePool, { logger, slowCallMs: 1000 });
  const start = { pool: "bench", tool: "noop", requestId: "r", correlationId: "c", workerId: "w", queueWaitMs: 0.01 };
  const end = { ...start, ok: true, errorCode: undefined, runMs: 0.2 };
  const emit = (name: string, event: unknown) => listeners.get(name)?.forEach((listener) => listener(event));
  const iterations = 200_000;
  for (let index = 0; index < 10_000; index++) emit("call:start", start), emit("call:end", end);
  const began = performance.now();
  for (let index = 0; index < iterations; index++) emit("call:start", start), emit("call:end", end);
  return ((performance.now() - began) * 1000) / iterations;
}
