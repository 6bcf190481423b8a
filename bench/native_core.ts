// The native core's costs, from Zig, Bun/Deno (whichever runs this) and Python, in one table.
//
//   bun run bench/native_core.ts        deno run -A bench/native_core.ts
//
// Rows: uncontended lock acquire+release (Zig API and C ABI from `zig build bench`, then
// through FFI from this runtime and from Python/ctypes), region create+map+unmap+unlink for
// 1 MiB and 1 GiB (1 GiB only if /dev/shm has room), memcpy bandwidth as the physical reference,
// and for a contended lock the wake-up latency and event-loop lag of each wait strategy.
import { execFileSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { openNativeLibrary, Region } from "../ffi/mod.ts";
import { printTable, quantile } from "./_stats.ts";
import { startPeer } from "../tests/_native_helpers.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const python = `${root}.venv/bin/python`;
const runtime = "Deno" in globalThis ? "deno" : "bun";
const rows: string[][] = [];
const format = (value: number, digits = 1) => value.toFixed(digits);
const row = (metric: string, where: string, value: string, unit: string, baseline: string) =>
  rows.push([metric, where, value, unit, baseline]);

function zigNumbers(): Record<string, number> {
  const output = execFileSync(python, ["-m", "ziglang", "build", "bench", "--", "--json"], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines = output.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as Record<string, number>;
}

function nsPerOperation(rounds: number, body: () => void): number {
  for (let index = 0; index < rounds / 10; index += 1) body();
  const start = performance.now();
  for (let index = 0; index < rounds; index += 1) body();
  return ((performance.now() - start) * 1e6) / rounds;
}

const PYTHON_LOCKS = `
import json, time
from snakepit_bridge import native
from snakepit_bridge.native_region import Region
library = native.load()
f = library.functions
rounds = 200_000
with Region.create(library, 4096, instance="bench_py") as region:
    handle = region._handle
    def measure(body):
        for _ in range(rounds // 10): body()
        start = time.perf_counter_ns()
        for _ in range(rounds): body()
        return (time.perf_counter_ns() - start) / rounds
    raw = measure(lambda: (f.snakepit_lock_acquire(handle, 1, 0, 0), f.snakepit_lock_release(handle, 1)))
    wrapped = measure(lambda: region.try_lock_exclusive().release())
print(json.dumps({"raw": raw, "wrapped": wrapped}))
`;

/**
 * Wake-up latency (a Python process releases the lock this runtime waits for: release time to
 * acquisition, both on the wall clock) and the event loop's worst lag meanwhile.
 */
async function contendedWaits(
  library: Awaited<ReturnType<typeof openNativeLibrary>>,
  waitStrategy: "auto" | "poll",
): Promise<{ wakeP50: number; wakeP99: number; lagMax: number }> {
  using region = Region.create(library, { payloadBytes: 64, instance: "bench_wait" });
  const rounds = 30;
  const peer = startPeer(["pulse", region.name, String(rounds), "20"]);
  const words = region.view(BigUint64Array, 0, 3);
  const wakeUs: number[] = [];
  let lagMax = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    lagMax = Math.max(lagMax, now - last - 1);
    last = now;
  }, 1);
  try {
    if ((await peer.nextLine()) !== "ready") throw new Error(peer.stderr());
    for (let round = 1; round <= rounds; round += 1) {
      while (words[0] !== BigInt(round)) await new Promise((resolve) => setTimeout(resolve, 0));
      const lock = await region.lockShared({ timeoutMs: 5000, waitStrategy });
      const acquiredNs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
      wakeUs.push(Number(acquiredNs - words[1]) / 1000);
      lock.release();
      words[2] = BigInt(round);
    }
  } finally {
    clearInterval(ticker);
    await peer.exited();
  }
  return { wakeP50: quantile(wakeUs, 0.5), wakeP99: quantile(wakeUs, 0.99), lagMax };
}

function regionCycleUs(
  library: Awaited<ReturnType<typeof openNativeLibrary>>,
  bytes: number,
  rounds: number,
): number {
  const start = performance.now();
  for (let round = 0; round < rounds; round += 1) {
    const region = Region.create(library, { payloadBytes: bytes, instance: "bench" });
    region.bytes();
    region.close();
  }
  return ((performance.now() - start) * 1000) / rounds;
}

function memcpyGBps(): number {
  const bytes = 256 * 2 ** 20;
  const source = new Uint8Array(bytes).fill(0x5a);
  const destination = new Uint8Array(bytes);
  let best = Infinity;
  for (let round = 0; round < 6; round += 1) {
    const start = performance.now();
    destination.set(source);
    best = Math.min(best, performance.now() - start);
  }
  return bytes / (best * 1e6);
}

const library = await openNativeLibrary();
try {
  const zig = zigNumbers();
  row(
    "lock excl acquire+release",
    "zig API",
    format(zig.lock_exclusive_zig_ns),
    "ns",
    "target <= 100",
  );
  row(
    "lock shared acquire+release",
    "zig API",
    format(zig.lock_shared_zig_ns),
    "ns",
    "target <= 100",
  );
  row(
    "lock excl acquire+release",
    "zig C ABI",
    format(zig.lock_exclusive_abi_ns),
    "ns",
    "(handle pin)",
  );
  {
    using region = Region.create(library, { payloadBytes: 64, instance: "bench_lock" });
    const exclusive = nsPerOperation(200_000, () => region.tryLockExclusive()!.release());
    const shared = nsPerOperation(200_000, () => region.tryLockShared()!.release());
    row(
      "lock excl acquire+release",
      `${runtime} FFI`,
      format(exclusive),
      "ns",
      `zig ${format(zig.lock_exclusive_abi_ns)}`,
    );
    row(
      "lock shared acquire+release",
      `${runtime} FFI`,
      format(shared),
      "ns",
      `zig ${format(zig.lock_shared_abi_ns)}`,
    );
  }
  const fromPython = JSON.parse(execFileSync(python, ["-c", PYTHON_LOCKS], { encoding: "utf8" }));
  row("lock excl acquire+release", "python ctypes", format(fromPython.raw), "ns", "raw symbols");
  row(
    "lock excl acquire+release",
    "python Region",
    format(fromPython.wrapped),
    "ns",
    "try_lock+release",
  );
  const available = library.shmAvailableBytes();
  row("region create+map+unmap+unlink 1 MiB", "zig", format(zig.region_cycle_1mib_us), "us", "");
  row(
    "region create+map+unmap+unlink 1 MiB",
    `${runtime} FFI`,
    format(regionCycleUs(library, 2 ** 20, 200)),
    "us",
    "",
  );
  if (available >= 2 ** 30 + 64 * 2 ** 20) {
    row(
      "region create+map+unmap+unlink 1 GiB",
      "zig",
      format(zig.region_cycle_1gib_us),
      "us",
      "sparse: no page touched",
    );
    row(
      "region create+map+unmap+unlink 1 GiB",
      `${runtime} FFI`,
      format(regionCycleUs(library, 2 ** 30, 5)),
      "us",
      "",
    );
  } else {
    console.log(`skipping 1 GiB regions: /dev/shm has only ${available} bytes free`);
  }
  row("memcpy 256 MiB", "zig", format(zig.memcpy_gb_per_s, 2), "GB/s", "physical reference");
  row("memcpy 256 MiB", `${runtime} TypedArray.set`, format(memcpyGBps(), 2), "GB/s", "");
  for (const strategy of runtime === "deno" ? ["auto", "poll"] as const : ["poll"] as const) {
    const name = strategy === "auto" ? "worker-thread wait" : "try-lock polling";
    const waits = await contendedWaits(library, strategy);
    row(`contended wake-up p50 (${name})`, runtime, format(waits.wakeP50), "us", "");
    row(`contended wake-up p99 (${name})`, runtime, format(waits.wakeP99), "us", "");
    row(`event-loop lag max (${name})`, runtime, format(waits.lagMax, 2), "ms", "1 ms timer");
  }
} finally {
  library.close();
}
console.log(
  `native core on ${runtime} ${runtime === "deno" ? Deno.version.deno : process.versions.bun}`,
);
printTable(["metric", "where", "value", "unit", "baseline / note"], rows);
