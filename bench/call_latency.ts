// Call-latency benchmark: a no-op call through the pool vs a bare grpc-js client calling a bare
// grpcio echo server, over the same transport (unix socket), in the same run. The two paths are
// measured in alternating rounds so that machine noise and drift fall on both alike.
// Run: `make bench`, or `bun run bench/call_latency.ts` / `deno run -A bench/call_latency.ts`.
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { Pool } from "../mod.ts";
import { printTable, quantile, RUNTIME, sequentialLatenciesUs, throughput } from "./_stats.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 1000);
const CONCURRENT_CALLS_PER_ROUND = Number(process.env.BENCH_CONCURRENT_CALLS ?? 2000);
const CONCURRENCY = 32;
const WARMUP = 300;
const python = resolve(".venv/bin/python");

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
  console.log(
    `call latency on ${RUNTIME}: ${ROUNDS} alternating rounds of ${CALLS_PER_ROUND} sequential no-op calls ` +
      `and ${CONCURRENT_CALLS_PER_ROUND} at concurrency ${CONCURRENCY}; one worker; unix socket\n`,
  );
  for (const path of paths) await sequentialLatenciesUs(path.call, WARMUP, 0);
  for (let round = 0; round < ROUNDS; round++) {
    for (const path of round % 2 === 0 ? paths : [...paths].reverse()) {
      path.samples.push(...await sequentialLatenciesUs(path.call, CALLS_PER_ROUND, 0));
      path.callsPerSecond.push(await throughput(path.call, CONCURRENCY, CONCURRENT_CALLS_PER_ROUND));
    }
  }
  const rows = paths.map((path) => ({
    name: path.name,
    p50: quantile(path.samples, 0.5),
    p99: quantile(path.samples, 0.99),
    callsPerSecond: quantile(path.callsPerSecond, 0.5),
  }));
  const [baseline, ours] = rows as [typeof rows[0], typeof rows[0]];
  printTable(
    ["path", "p50 µs", "p99 µs", `calls/s @${CONCURRENCY} (median round)`],
    rows.map((row) => [row.name, row.p50.toFixed(0), row.p99.toFixed(0), row.callsPerSecond.toFixed(0)]),
  );
  console.log(
    `\nratio pool/bare: p50 ${(ours.p50 / baseline.p50).toFixed(2)}x, p99 ${(ours.p99 / baseline.p99).toFixed(2)}x, ` +
      `calls/s ${(ours.callsPerSecond / baseline.callsPerSecond).toFixed(2)}x` +
      `  (pool overhead at p50: ${((ours.p50 / baseline.p50 - 1) * 100).toFixed(0)}%)`,
  );
} finally {
  await pool.close();
  bare.stop();
  rmSync(directory, { recursive: true, force: true });
}
