// The Quick start demo: a pool of two Python workers running a numpy adapter.
// Run with `make demo` (or `bun run examples/demo.ts`, `deno run -A examples/demo.ts`).
import process from "node:process";
import { Pool, PythonError } from "../mod.ts";

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
console.log(`tools: ${pool.describe().tools.map((tool) => tool.name).join(", ")}\n`);

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

console.log("\nclosing the pool (every worker and its children stop)");
process.exitCode = 0;
