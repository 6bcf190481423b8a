// Fast-lane benchmark (issue 9): a no-op call and a large byte round trip through the pool's
// shared-memory fast lane and through its gRPC transport, beside the bare mechanism of subprocess
// bridges (JSON lines over pipes, spawned with node:child_process from this same run) and
// python-shell driving the same loop; the fast lane again with the worker's C lean loop switched
// off (SNAKEPIT_LANE_NATIVE=0); plus the idle CPU of a fast-lane pool of 4. The call paths
// are measured in rotating rounds so that machine noise and drift fall on all of them alike.
// Run: `make bench`, or `bun run bench/fast_lane.ts` / `deno run -A bench/fast_lane.ts`.
import { Buffer } from "node:buffer";
import process from "node:process";
import { Pool, type PoolOptions } from "../mod.ts";
import { type Call, killLoopChildren, startJsonLinesLoop, startPythonShell } from "./_json_lines_clients.ts";
import { cpuPercentWhileIdle } from "./_cpu.ts";
import { printTable, quantile, RUNTIME, sequentialLatenciesUs } from "./_stats.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 1000);
const THROUGHPUT_ROUND_MS = Number(process.env.BENCH_THROUGHPUT_MS ?? 1000);
const CONCURRENCY = 16;
const WARMUP = 300;
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 10);
const MIB = 1024 * 1024;
/** Payload sizes and their repetitions; few at 64 MiB, where one repetition moves ~0.5 GB. */
const PAYLOADS = [{ label: "1 MiB", bytes: MIB, repetitions: 9 }, {
  label: "64 MiB",
  bytes: 64 * MIB,
  repetitions: 3,
}];
const TARGET_P50_RATIO_MAX = 0.5;
const TARGET_CALLS_PER_SECOND_RATIO_MIN = 1.5;
const RUNTIME_NAME = "Bun" in globalThis ? "Bun" : "Deno" in globalThis ? "Deno" : "Node";
const base: PoolOptions = {
  adapter: "snakepit_bridge.examples.echo:EchoAdapter",
  workerLogs: "silent",
  instance: "bench",
};

type Transport = "fast-lane" | "grpc";
/**
 * A pool on `transport` with the default options: one call runs at a time per worker, as for every
 * non-thread-safe adapter. On the fast lane the other 15 of the 16 in flight wait in the worker's
 * request ring (pipelining, `pipelineDepth` 16); over gRPC they wait in the pool's queue.
 */
function startPool(transport: Transport, size: number, laneSpinUs?: number, env?: Record<string, string>): Promise<Pool> {
  return Pool.start({ ...base, size, transport, ...(laneSpinUs === undefined ? {} : { laneSpinUs }), ...(env ? { env } : {}) });
}
const UNAVAILABLE = "n/a";

/**
 * The spin budget's trade-off: no-op latency, and the latency of a call longer than the spin
 * (a 2 ms sleep: the host parks and the doorbell wakes it), at several budgets.
 */
async function printSpinTable(): Promise<void> {
  const rows: string[][] = [];
  for (const spinUs of [0, 20, 50, 200, 1000]) {
    const pool = await startPool("fast-lane", 1, spinUs);
    pools.push(pool);
    const noop = await sequentialLatenciesUs(() => pool.call("noop", {}), CALLS_PER_ROUND, WARMUP);
    const sleeps = await sequentialLatenciesUs(() => pool.call("block", { seconds: 0.002 }), 200, 20);
    rows.push([
      String(spinUs),
      quantile(noop, 0.5).toFixed(1),
      quantile(noop, 0.99).toFixed(0),
      (quantile(sleeps, 0.5) - 2000).toFixed(0),
      (quantile(sleeps, 0.99) - 2000).toFixed(0),
    ]);
    await pools.pop()!.close();
  }
  printTable(["laneSpinUs", "no-op p50 µs", "no-op p99 µs", "2 ms call p50 − 2 ms (µs)", "p99 − 2 ms (µs)"], rows);
}

function shortReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split(/\. \(|\n/)[0]!.slice(0, 80);
}

interface Path {
  name: string;
  call?: Call;
  /** Why the path has no numbers. */
  missing?: string;
  samples: number[];
  callsPerSecond: number[];
}

function ratio(value: number | undefined, baseline: number): string {
  return value === undefined ? "" : `${(value / baseline).toFixed(2)}x`;
}

function target(
  label: string,
  value: number | undefined,
  passes: (value: number) => boolean,
): string {
  if (value === undefined) return `${label}: ${UNAVAILABLE}`;
  return `${label}: ${passes(value) ? "PASS" : "MISS"} (${value.toFixed(2)}x)`;
}

/**
 * Calls per second with `concurrency` calls always in flight, over `durationMs` (a fixed time
 * rather than a fixed count: the fast paths finish 2000 calls in ~20 ms, too short to measure).
 */
async function throughputFor(call: () => Promise<unknown>, concurrency: number, durationMs: number): Promise<number> {
  let completed = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() - start < durationMs) {
      await call();
      completed += 1;
    }
  }));
  return completed / ((performance.now() - start) / 1000);
}

async function measureCalls(paths: Path[]): Promise<void> {
  const live = paths.filter((path) => path.call);
  for (const path of live) await sequentialLatenciesUs(() => path.call!("noop", {}), WARMUP, 0);
  for (let round = 0; round < ROUNDS; round++) {
    for (let index = 0; index < live.length; index++) {
      const path = live[(index + round) % live.length]!;
      const noop = () => path.call!("noop", {});
      path.samples.push(...await sequentialLatenciesUs(noop, CALLS_PER_ROUND, 0));
      path.callsPerSecond.push(await throughputFor(noop, CONCURRENCY, THROUGHPUT_ROUND_MS));
    }
  }
}

function printCallTable(paths: Path[]): void {
  const rows = paths.map((path) =>
    path.call
      ? {
        path,
        p50: quantile(path.samples, 0.5),
        p99: quantile(path.samples, 0.99),
        callsPerSecond: quantile(path.callsPerSecond, 0.5),
      }
      : { path }
  );
  const baseline = rows[0] as Required<typeof rows[0]>;
  printTable(
    ["path", "p50 µs", "p99 µs", `calls/s @${CONCURRENCY}`, "p50 vs pipe", "calls/s vs pipe"],
    rows.map((row) =>
      row.p50 === undefined ? [row.path.name, row.path.missing!, "", "", "", ""] : [
        row.path.name,
        row.p50.toFixed(0),
        row.p99!.toFixed(0),
        row.callsPerSecond!.toFixed(0),
        ratio(row.p50, baseline.p50),
        ratio(row.callsPerSecond, baseline.callsPerSecond),
      ]
    ),
  );
  const fastLane = rows[3]!;
  console.log();
  console.log(
    target(
      `target: fast lane p50 <= ${TARGET_P50_RATIO_MAX}x pipe baseline`,
      fastLane.p50 && fastLane.p50 / baseline.p50,
      (value) => value <= TARGET_P50_RATIO_MAX,
    ),
  );
  console.log(
    target(
      `target: fast lane calls/s >= ${TARGET_CALLS_PER_SECOND_RATIO_MIN}x pipe baseline`,
      fastLane.callsPerSecond && fastLane.callsPerSecond / baseline.callsPerSecond,
      (value) => value >= TARGET_CALLS_PER_SECOND_RATIO_MIN,
    ),
  );
}

function sameBytes(actual: unknown, expected: Uint8Array): boolean {
  if (!(actual instanceof Uint8Array)) return false;
  return Buffer.compare(
    Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength),
    Buffer.from(expected.buffer),
  ) === 0;
}

/** Median ms of `repetitions` round trips of `source` (after one unmeasured), checked unchanged. */
async function medianRoundTripMs(
  echo: (bytes: Uint8Array) => Promise<unknown>,
  source: Uint8Array,
  repetitions: number,
): Promise<number> {
  const samples: number[] = [];
  for (let repetition = 0; repetition <= repetitions; repetition++) {
    const start = performance.now();
    const result = await echo(source);
    if (repetition > 0) samples.push(performance.now() - start);
    if (!sameBytes(result, source)) {
      throw new Error(`the ${source.byteLength}-byte round trip changed the bytes`);
    }
  }
  return quantile(samples, 0.5);
}

async function printPayloadTable(
  echoes: { name: string; echo?: (bytes: Uint8Array) => Promise<unknown>; missing?: string }[],
) {
  const copy = {
    name: "reference: new Uint8Array(source) copy",
    echo: (bytes: Uint8Array) => Promise.resolve(new Uint8Array(bytes)),
  };
  const all = [...echoes, copy];
  const medians = new Map<string, (number | undefined)[]>(all.map((path) => [path.name, []]));
  for (const payload of PAYLOADS) {
    const source = new Uint8Array(payload.bytes);
    for (let index = 0; index < source.length; index++) {
      source[index] = (index * 2_654_435_761) >>> 24;
    }
    for (const path of all) {
      medians.get(path.name)!.push(
        path.echo ? await medianRoundTripMs(path.echo, source, payload.repetitions) : undefined,
      );
    }
  }
  const [pipe] = medians.values();
  const copyMedians = medians.get(copy.name)!;
  printTable(
    [
      "round trip of a Uint8Array (median ms)",
      ...PAYLOADS.flatMap((payload) => [payload.label, "vs pipe", "vs copy"]),
    ],
    all.map((path) =>
      path.echo
        ? [
          path.name,
          ...medians.get(path.name)!.flatMap((
            ms,
            index,
          ) => [ms!.toFixed(2), ratio(ms, pipe![index]!), ratio(ms, copyMedians[index]!)]),
        ]
        : [
          path.name,
          (path as { missing?: string }).missing!,
          ...PAYLOADS.flatMap(() => ["", ""]),
          "",
        ]
    ),
  );
}

/**
 * Idle CPU of a pool of 4 on each transport, in ABBA order; measured before anything else, so
 * that the collection of the payload tables' garbage (hundreds of MB) is not counted as the
 * pool's.
 */
async function measureIdle(): Promise<Map<string, number[]>> {
  const idle = new Map<string, number[]>([["fast-lane", []], ["grpc", []]]);
  for (const transport of ["fast-lane", "grpc", "grpc", "fast-lane"] as const) {
    const pool = await startPool(transport, 4);
    pools.push(pool);
    (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
    await new Promise((resolve) => setTimeout(resolve, 3000)); // Start-up work settles first.
    const pids = pool.stats().workers.flatMap((worker) => worker.pid === undefined ? [] : [worker.pid]);
    idle.get(transport)!.push(await cpuPercentWhileIdle(pids, IDLE_SECONDS));
    await pools.pop()!.close();
  }
  return idle;
}

function idleRows(idle: Map<string, number[]>): string[][] {
  return [...idle].map(([transport, samples]) => [
    `pool of 4, transport "${transport}"`,
    samples.map((sample) => sample.toFixed(2)).join(" / "),
  ]);
}

console.log(
  `fast lane on ${RUNTIME}: ${ROUNDS} rotating rounds of ${CALLS_PER_ROUND} sequential no-op calls and ` +
    `${THROUGHPUT_ROUND_MS} ms with ${CONCURRENCY} in flight; one worker\n`,
);
const pools: Pool[] = [];
const stops: (() => void)[] = [];
try {
  const idle = await measureIdle();
  // python-shell first: where it throws after spawning the loop, its orphan is the only loop to kill.
  const shell = await startPythonShell().catch((error) => (killLoopChildren(), shortReason(error)));
  if (typeof shell !== "string") stops.push(shell.stop);
  const loop = startJsonLinesLoop();
  stops.push(loop.stop);
  const grpcPool = await startPool("grpc", 1);
  const fastLanePool = await startPool("fast-lane", 1);
  // The same lane with the worker's C lean loop switched off: what the loop itself buys.
  const pythonLoopPool = await startPool("fast-lane", 1, undefined, { SNAKEPIT_LANE_NATIVE: "0" });
  for (const pool of [grpcPool, fastLanePool, pythonLoopPool]) if (pool) pools.push(pool);
  const poolCall = (pool: Pool | undefined): Call | undefined =>
    pool && ((tool, args) => pool.call(tool, args));
  const paths: Path[] = [
    { name: "baseline: JSON lines over pipes", call: loop.call, samples: [], callsPerSecond: [] },
    typeof shell === "string"
      ? {
        name: "python-shell 5.0.0 (JSON mode)",
        missing: `fails on ${RUNTIME_NAME}: ${shell}`,
        samples: [],
        callsPerSecond: [],
      }
      : {
        name: "python-shell 5.0.0 (JSON mode)",
        call: shell.call,
        samples: [],
        callsPerSecond: [],
      },
    {
      name: 'snakepit, transport "grpc"',
      call: poolCall(grpcPool),
      missing: UNAVAILABLE,
      samples: [],
      callsPerSecond: [],
    },
    {
      name: 'snakepit, transport "fast-lane"',
      call: poolCall(fastLanePool),
      missing: UNAVAILABLE,
      samples: [],
      callsPerSecond: [],
    },
    {
      name: '  the same, worker loop in Python (SNAKEPIT_LANE_NATIVE=0)',
      call: poolCall(pythonLoopPool),
      missing: UNAVAILABLE,
      samples: [],
      callsPerSecond: [],
    },
  ];
  await measureCalls(paths);
  printCallTable(paths);

  console.log();
  const poolEcho = (pool: Pool | undefined) =>
    pool && ((bytes: Uint8Array) => pool.call("echo", { value: bytes }));
  await printPayloadTable([
    {
      name: "baseline: JSON lines over pipes (base64)",
      echo: async (bytes) => {
        const encoded = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(
          "base64",
        );
        const reply = await loop.call("echo", { value: encoded }) as string;
        return Buffer.from(reply, "base64");
      },
    },
    { name: 'snakepit, transport "grpc"', echo: poolEcho(grpcPool), missing: UNAVAILABLE },
    { name: 'snakepit, transport "fast-lane"', echo: poolEcho(fastLanePool), missing: UNAVAILABLE },
  ]);
  for (const pool of pools.splice(0)) await pool.close();

  console.log();
  printTable([`idle over ${IDLE_SECONDS} s, host + workers`, "CPU % of one core (two runs)"], idleRows(idle));

  console.log();
  await printSpinTable();
} finally {
  await Promise.allSettled(pools.map((pool) => pool.close()));
  for (const stop of stops) stop();
  killLoopChildren();
}
