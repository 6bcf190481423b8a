// Zero-copy benchmark: float32 arrays of 1 MiB to 1 GiB handed to Python and back, through
// shared memory (a SharedTensor: a descriptor crosses, never the bytes) against the copy path
// (the same pool code with zeroCopy "off": msgpack bytes over gRPC, values of 64 MiB and more
// streamed in chunks beside the call) and a bare grpc-js -> grpcio
// bytes echo of the same size; then a 10-million-row, 4-column Arrow table handed to pyarrow.
// Everything runs in this one process run; medians of a few calls per size.
//
//   bun run bench/zero_copy.ts            (or: deno run -A bench/zero_copy.ts)
//   SNAKEPIT_BENCH_MAX_MIB=256 bun run bench/zero_copy.ts    (skip the 1 GiB row)
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { tableFromArrays } from "apache-arrow";
import { Pool, releaseTable, type Tensor } from "../mod.ts";
import { printTable, quantile, RUNTIME } from "./_stats.ts";

const MIB = 1 << 20;
const MAX_MIB = Number(process.env.SNAKEPIT_BENCH_MAX_MIB ?? 1024);
const SIZES_MIB = [1, 16, 256, 1024].filter((size) => size <= MAX_MIB);
const ROWS = Number(process.env.SNAKEPIT_BENCH_ARROW_ROWS ?? 10_000_000);
const python = resolve(".venv/bin/python");
const MESSAGE_MAX = 2 ** 31 - 1;
const ADAPTER = "snakepit_bridge.examples.tensors:TensorAdapter";

const repeats = (mib: number) => mib >= 1024 ? 2 : mib >= 256 ? 3 : mib >= 16 ? 7 : 21;

async function medianMs(call: () => Promise<unknown>, times: number): Promise<number> {
  const samples: number[] = [];
  await call(); // warm-up: first-touch page faults and lazy imports are not the steady state
  for (let index = 0; index < times; index++) {
    const started = performance.now();
    await call();
    samples.push(performance.now() - started);
  }
  return quantile(samples, 0.5);
}

async function startBareServer(directory: string) {
  const address = `unix:${join(directory, "echo.sock")}`;
  const server = spawn(python, ["bench/bare_echo_server.py", address, String(MESSAGE_MAX)], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((ready, fail) => {
    server.stdout!.once("data", ready);
    server.once("exit", () => fail(new Error("the bare echo server exited")));
  });
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": MESSAGE_MAX,
    "grpc.max_send_message_length": MESSAGE_MAX,
  });
  const identity = (bytes: Buffer) => bytes;
  const echo = (payload: Buffer) =>
    new Promise((done, fail) =>
      client.makeUnaryRequest("/bench.Echo/Call", identity, identity, payload, (error, reply) => error ? fail(error) : done(reply))
    );
  return { echo, stop: () => (client.close(), server.kill("SIGKILL")) };
}

const fmt = (ms: number) => ms < 10 ? ms.toFixed(3) : ms.toFixed(1);
const directory = mkdtempSync(join(tmpdir(), "snakepit-bench-"));
const bare = await startBareServer(directory);
const common = { adapter: ADAPTER, size: 1, workerLogs: "silent" as const, instance: "bench" };
const shared = await Pool.start({ ...common });
const copying = await Pool.start({ ...common, transport: "grpc", zeroCopy: "off" });
const alwaysShared = await Pool.start({ ...common, zeroCopyThresholdBytes: 0 });
const alwaysInline = await Pool.start({ ...common, zeroCopyThresholdBytes: 2 ** 40 });
try {
  // The threshold's crossover: a plain Float32Array (not already in shared memory) copied once
  // into a region per call, against the same bytes inline in the payload, same transport.
  const crossover: string[][] = [];
  for (const kib of [4, 16, 64, 256, 1024]) {
    const plain = new Float32Array((kib * 1024) / 4).fill(1);
    const viaRegion = await medianMs(() => alwaysShared.call("first", { x: plain }), 101);
    const inline = await medianMs(() => alwaysInline.call("first", { x: plain }), 101);
    crossover.push([`${kib} KiB`, fmt(viaRegion), fmt(inline), `${(inline / viaRegion).toFixed(2)}x`]);
  }
  console.log("threshold crossover (a plain Float32Array per call; fast lane):");
  printTable(["size", "via a region ms", "inline ms", "inline / region"], crossover);
  console.log("");
  console.log(`zero-copy on ${RUNTIME}: float32 arrays, median ms of a few calls per size (after one warm-up); one worker per pool\n`);
  const noop = await medianMs(() => shared.call("noop"), 200);
  const handoff: string[][] = [];
  const roundTrip: string[][] = [];
  for (const mib of SIZES_MIB) {
    const elements = (mib * MIB) / 4;
    const times = repeats(mib);
    const tensor = shared.tensor([elements], "float32");
    (tensor.data as Float32Array).fill(1.5);
    const plain = new Float32Array(elements).fill(1.5);
    const zeroCopy = await medianMs(() => shared.call("first", { x: tensor }), times);
    const copied = await medianMs(() => copying.call("first", { x: plain }), times);
    const bytes = Buffer.from(plain.buffer);
    const bareEcho = await medianMs(() => bare.echo(bytes), times);
    handoff.push([
      `${mib} MiB`,
      fmt(zeroCopy),
      fmt(zeroCopy - noop),
      fmt(copied),
      fmt(bareEcho),
      `${(copied / zeroCopy).toFixed(0)}x`,
    ]);
    const back = async (pool: Pool, x: unknown) => (await pool.call<Tensor>("echo", { x })).release();
    const zeroCopyTrip = await medianMs(() => back(shared, tensor), times);
    const copiedTrip = await medianMs(() => back(copying, plain), times);
    roundTrip.push([`${mib} MiB`, fmt(zeroCopyTrip), fmt(copiedTrip), fmt(bareEcho), `${(copiedTrip / zeroCopyTrip).toFixed(1)}x`]);
    tensor.release();
  }
  console.log(`no-argument call (the zero-copy overhead's baseline): ${fmt(noop)} ms\n`);
  console.log("TS -> Python handoff (Python reads one element, returns a scalar):");
  printTable(["size", "zero-copy ms", "over no-arg ms", "copy path ms", "bare gRPC echo ms", "copy / zero-copy"], handoff);
  console.log("\nTS -> Python -> TS (Python returns an array of the same size: one copy into a region):");
  printTable(["size", "zero-copy ms", "copy path ms", "bare gRPC echo ms", "copy / zero-copy"], roundTrip);

  const columns = {
    a: Float64Array.from({ length: ROWS }, (_, index) => index),
    b: Float32Array.from({ length: ROWS }, (_, index) => index / 2),
    c: Int32Array.from({ length: ROWS }, (_, index) => index % 1000),
    d: Int32Array.from({ length: ROWS }, (_, index) => -index),
  };
  const table = tableFromArrays(columns);
  const arrowShared = await medianMs(() => shared.call("table_summary", { table }), 3);
  const arrowCopied = await medianMs(() => copying.call("table_summary", { table }), 3);
  console.log(`\nArrow: a ${ROWS.toLocaleString("en")}-row, 4-column table handed to pyarrow (IPC in a region vs IPC bytes over gRPC):`);
  printTable(["path", "median ms"], [["shared memory", fmt(arrowShared)], ["IPC bytes over gRPC", fmt(arrowCopied)], ["ratio", `${(arrowCopied / arrowShared).toFixed(1)}x`]]);
  const back = await shared.call("frame", { n: 3 });
  releaseTable(back as never);
} finally {
  await shared.close();
  await copying.close();
  await alwaysShared.close();
  await alwaysInline.close();
  bare.stop();
  rmSync(directory, { recursive: true, force: true });
}
