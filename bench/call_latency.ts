// Call-latency benchmark: a no-op call through the pool vs a bare grpc-js client calling a bare
// grpcio echo server, over the same transport (unix socket), in the same run.
// Run: `make bench`, or `bun run bench/call_latency.ts` / `deno run -A bench/call_latency.ts`.
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { Pool } from "../mod.ts";
import { printTable, quantile, RUNTIME, sequentialLatenciesUs, throughput } from "./_stats.ts";

const SEQUENTIAL_CALLS = Number(process.env.BENCH_CALLS ?? 3000);
const CONCURRENT_CALLS = Number(process.env.BENCH_CONCURRENT_CALLS ?? 6000);
const CONCURRENCY = 32;
const WARMUP = 300;
const python = resolve(".venv/bin/python");

interface Row {
  name: string;
  p50: number;
  p99: number;
  callsPerSecond: number;
}

async function measure(name: string, call: () => Promise<unknown>): Promise<Row> {
  const samples = await sequentialLatenciesUs(call, SEQUENTIAL_CALLS, WARMUP);
  const callsPerSecond = await throughput(call, CONCURRENCY, CONCURRENT_CALLS);
  return { name, p50: quantile(samples, 0.5), p99: quantile(samples, 0.99), callsPerSecond };
}

async function bareGrpc(): Promise<Row> {
  const directory = mkdtempSync(join(tmpdir(), "snakepit-bench-"));
  const address = `unix:${join(directory, "echo.sock")}`;
  const server = spawn(python, ["bench/bare_echo_server.py", address], { stdio: ["ignore", "pipe", "inherit"] });
  try {
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
    const row = await measure("bare grpc-js -> grpcio echo", call);
    client.close();
    return row;
  } finally {
    server.kill("SIGKILL");
    rmSync(directory, { recursive: true, force: true });
  }
}

async function poolNoop(): Promise<Row> {
  await using pool = await Pool.start({
    adapter: "snakepit_bridge.examples.echo:EchoAdapter",
    size: 1,
    concurrentTasksPerWorker: CONCURRENCY,
    workerLogs: "silent",
  });
  return await measure("snakepit pool.call('noop')", () => pool.call("noop"));
}

console.log(`call latency on ${RUNTIME}: ${SEQUENTIAL_CALLS} sequential no-op calls, then ${CONCURRENT_CALLS} at concurrency ${CONCURRENCY}, one worker, unix socket\n`);
const baseline = await bareGrpc();
const ours = await poolNoop();
const format = (row: Row) => [row.name, row.p50.toFixed(0), row.p99.toFixed(0), row.callsPerSecond.toFixed(0)];
printTable(["path", "p50 µs", "p99 µs", `calls/s @${CONCURRENCY}`], [format(baseline), format(ours)]);
console.log(
  `\nratio pool/bare: p50 ${(ours.p50 / baseline.p50).toFixed(2)}x, p99 ${(ours.p99 / baseline.p99).toFixed(2)}x, ` +
    `calls/s ${(ours.callsPerSecond / baseline.callsPerSecond).toFixed(2)}x` +
    `  (pool overhead at p50: ${(((ours.p50 / baseline.p50) - 1) * 100).toFixed(0)}%)`,
);
