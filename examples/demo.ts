// The Quick start demo: a pool of two Python workers running a numpy adapter.
// Run with `make demo` (or `bun run examples/demo.ts`, `deno run -A examples/demo.ts`).
import process from "node:process";
import { Hono } from "hono";
import { healthRouter } from "../health.ts";
import { Pool, PythonError } from "../mod.ts";
import { quantile, sequentialLatenciesUs } from "../bench/_stats.ts";
import { get, serve } from "./_serve.ts";

const runtime = "Bun" in globalThis ? "Bun" : "Deno" in globalThis ? "Deno" : "Node";

function ms(start: number): string {
  return `${(performance.now() - start).toFixed(2).padStart(8)} ms`;
}

const startedAt = performance.now();
const interactive = process.stdout.isTTY === true;
await using pool = await Pool.start({
  adapter: "snakepit_bridge.examples.numeric:NumericAdapter",
  size: 2,
  workerLogs: "silent",
  on: {
    // Start-up progress: a bar redrawn in place on a terminal, one line per step otherwise.
    "pool:progress": ({ ready, failed, total }) => {
      const bar = "#".repeat(ready).padEnd(total, ".");
      const line = `starting workers [${bar}] ${ready}/${total} ready${failed ? `, ${failed} failed` : ""} (${ms(startedAt).trim()})`;
      process.stdout.write(interactive ? `\r${line}${ready + failed === total ? "\n" : ""}` : `${line}\n`);
    },
  },
});
console.log(`snakepit demo on ${runtime}: pool "${pool.name}" with ${pool.size} workers (pids ${pool.workerPids.join(", ")}) ready in ${ms(startedAt)}`);
console.log(`tools: ${pool.describe().tools.map((tool) => tool.name).join(", ")}`);

// The health routes, mounted in a Hono app and served while the demo runs.
const app = new Hono();
app.route("/ops", healthRouter({ pools: [pool] }));
await using server = await serve(app.fetch);
const readiness = await get(`${server.url}/ops/readyz`);
console.log(`health router at ${server.url}/ops: GET /ops/readyz -> ${readiness.status}\n`);

async function timed<T>(label: string, run: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const result = await run();
  console.log(`${ms(start)}  ${label.padEnd(44)} -> ${JSON.stringify(result, (_k, v) => typeof v === "bigint" ? `${v}n` : v)}`);
  return result;
}

await timed("add(a=2, b=40)", () => pool.call("add", { a: 2, b: 40 }));
await timed("stats([1.5, 2.5, 9, 4])  (numpy)", () => pool.call("stats", { values: [1.5, 2.5, 9, 4] }));
await timed("matmul_trace(n=256)  (numpy, 256x256 @)", () => pool.call("matmul_trace", { n: 256 }));
await timed("add(a=2**62, b=1)  (bigint round trip)", () => pool.call("add", { a: 2n ** 62n, b: 1n }));
await timed("8 calls in parallel over 2 workers", () =>
  Promise.all(Array.from({ length: 8 }, (_, index) => pool.call("add", { a: index, b: index }))));

const streamStart = performance.now();
const items: unknown[] = [];
for await (const item of pool.stream("count", { n: 5, delay_ms: 2 })) items.push(item);
console.log(`${ms(streamStart)}  ${"stream count(n=5)".padEnd(44)} -> ${JSON.stringify(items)}`);

const errorStart = performance.now();
try {
  await pool.call("fail", { message: "raised on purpose" });
} catch (error) {
  if (!(error instanceof PythonError)) throw error;
  console.log(`${ms(errorStart)}  ${"fail(message=...)".padEnd(44)} -> ${error.name} ${error.pythonType}: ${error.message}`);
  const raising = error.frames.at(-1);
  console.log(`${" ".repeat(14)}raised at ${raising?.file.split("/").slice(-2).join("/")}:${raising?.line}: ${raising?.source}`);
  console.log(`${" ".repeat(14)}caused by ${error.causes.map((cause) => `${cause.pythonType}(${cause.message})`).join(" <- ")}`);
}

const warm = await sequentialLatenciesUs(() => pool.call("add", { a: 1, b: 2 }), 500, 50);
console.log(`\nwarm workers: 500 sequential add() calls, p50 ${quantile(warm, 0.5).toFixed(0)} µs, p99 ${quantile(warm, 0.99).toFixed(0)} µs (the first calls above include warm-up)`);

console.log("\nclosing the pool (every worker and its children stop)");
process.exitCode = 0;
