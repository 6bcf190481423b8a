// Call-latency benchmark: a no-op call through the pool vs a bare grpc-js client calling a bare
// grpcio echo server, over the same transport (unix socket), in the same run. The two paths are
// measured in alternating rounds so that machine noise and drift fall on both alike, in several
// pairs of fresh processes.
// Run: `make bench`, or `bun run bench/call_latency.ts` / `deno run -A bench/call_latency.ts`.
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { Pool } from "../mod.ts";
import { printTable, quantile, RUNTIME, sequentialLatenciesUs, throughput } from "./_stats.ts";

// Each server process lands on the cores in its own way, and that bias lasts the process's
// life (p50s of two identical servers differ by up to ~20% in one run here): alternating rounds
// cannot cancel it, fresh pairs of processes can, so the summary is the median over pairs.
const PAIRS = Number(process.env.BENCH_PAIRS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 500);
const CONCURRENT_CALLS_PER_ROUND = Number(process.env.BENCH_CONCURRENT_CALLS ?? 1000);
const CONCURRENCY = 32;
const WARMUP = 300;
const python = resolve(".venv/bin/python");

interface Row {
  name: string;
  p50: number;
  p99: number;
  callsPerSecond: number;
}

interface Path {
  name: string;
  call: () => Promise<unknown>;
  samples: number[];
  callsPerSecond: number[];
}

async function startBareServer(directory: string) {
  const address = `unix:${join(directory, "echo.sock")}`;
  const server = spawn(python, ["bench/bare_echo_server.py", address], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((ready, fail) => {
    server.stdout!.once("data", ready);
    server.once("exit", () => fail(new Error("the bare echo server exited")));
  });
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const identity = (bytes: Buffer) => bytes;
  const payload = Buffer.from([0x80]); // an empty msgpack map, the size of a no-op call's args
  const call = () =>
    new Promise((done, fail) =>
      client.makeUnaryRequest("/bench.Echo/Call", identity, identity, payload, (error, reply) => error ? fail(error) : done(reply))
    );
  return { call, stop: () => (client.close(), server.kill("SIGKILL")) };
}

/** One pair of fresh processes (a bare echo server and a one-worker pool), measured alike. */
async function measurePair(): Promise<Path[]> {
  const directory = mkdtempSync(join(tmpdir(), "snakepit-bench-"));
  const bare = await startBareServer(directory);
  const pool = await Pool.start({
    adapter: "snakepit_bridge.examples.echo:EchoAdapter",
    size: 1,
    concurrentTasksPerWorker: CONCURRENCY,
    workerLogs: "silent",
    // The comparison is over the same transport: the pool's gRPC path, not its fast lane.
    transport: "grpc",
  });
  try {
    const paths: Path[] = [
      { name: "bare grpc-js -> grpcio echo", call: bare.call, samples: [], callsPerSecond: [] },
      { name: "snakepit pool.call('noop'), gRPC", call: () => pool.call("noop"), samples: [], callsPerSecond: [] },
    ];
    for (const path of paths) await sequentialLatenciesUs(path.call, WARMUP, 0);
    for (let round = 0; round < ROUNDS; round++) {
      for (const path of round % 2 === 0 ? paths : [...paths].reverse()) {
        path.samples.push(...await sequentialLatenciesUs(path.call, CALLS_PER_ROUND, 0));
        path.callsPerSecond.push(await throughput(path.call, CONCURRENCY, CONCURRENT_CALLS_PER_ROUND));
      }
    }
    return paths;
  } finally {
    await pool.close();
    bare.stop();
    rmSync(directory, { recursive: true, force: true });
  }
}

console.log(
  `call latency on ${RUNTIME}: ${PAIRS} pairs of fresh processes (a bare echo server and a one-worker pool), ` +
    `each ${ROUNDS} alternating rounds of ${CALLS_PER_ROUND} sequential no-op calls and ${CONCURRENT_CALLS_PER_ROUND} ` +
    `at concurrency ${CONCURRENCY}; unix socket\n`,
);
const rows: string[][] = [];
const ratios: { p50: number; p99: number; callsPerSecond: number }[] = [];
for (let pair = 1; pair <= PAIRS; pair++) {
  const [baseline, ours] = (await measurePair()).map((path) => ({
    name: path.name,
    p50: quantile(path.samples, 0.5),
    p99: quantile(path.samples, 0.99),
    callsPerSecond: quantile(path.callsPerSecond, 0.5),
  })) as [Row, Row];
  for (const row of [baseline, ours]) {
    rows.push([String(pair), row.name, row.p50.toFixed(0), row.p99.toFixed(0), row.callsPerSecond.toFixed(0)]);
  }
  ratios.push({ p50: ours.p50 / baseline.p50, p99: ours.p99 / baseline.p99, callsPerSecond: ours.callsPerSecond / baseline.callsPerSecond });
}
printTable(["pair", "path", "p50 µs", "p99 µs", `calls/s @${CONCURRENCY} (median round)`], rows);
const median = (values: number[]) => quantile(values, 0.5);
const p50Ratio = median(ratios.map((ratio) => ratio.p50));
console.log(
  `\nper pair, pool/bare p50: ${ratios.map((ratio) => ratio.p50.toFixed(2) + "x").join(", ")}` +
    `\nmedian over pairs: p50 ${p50Ratio.toFixed(2)}x, p99 ${median(ratios.map((ratio) => ratio.p99)).toFixed(2)}x, ` +
    `calls/s ${median(ratios.map((ratio) => ratio.callsPerSecond)).toFixed(2)}x` +
    `  (pool overhead at p50: ${((p50Ratio - 1) * 100).toFixed(0)}%)`,
);
