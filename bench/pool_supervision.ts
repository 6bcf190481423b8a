// Supervision benchmark: time for 1 and 8 workers to be ready; time from a worker's SIGKILL to the
// pool being back at full size, and the calls that failed meanwhile with and without retry of
// idempotent calls; CPU cost of the default heartbeat on an idle pool.
// Run: `bun run bench/pool_supervision.ts` / `deno run -A bench/pool_supervision.ts`.
import process from "node:process";
import { Pool, type PoolOptions } from "../mod.ts";
import { cpuPercentWhileIdle } from "./_cpu.ts";
import { printTable, quantile, RUNTIME } from "./_stats.ts";

const REPETITIONS = Number(process.env.BENCH_REPETITIONS ?? 3);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 10);
const base: PoolOptions = { adapter: "snakepit_bridge.examples.echo:EchoAdapter", workerLogs: "silent", instance: "bench" };

async function readyTimeMs(size: number): Promise<number> {
  const samples: number[] = [];
  for (let repetition = 0; repetition < REPETITIONS; repetition++) {
    const started = performance.now();
    const pool = await Pool.start({ ...base, size, startConcurrency: size });
    samples.push(performance.now() - started);
    await pool.close();
  }
  return quantile(samples, 0.5);
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Kills one worker of a loaded pool; returns recovery time and the calls that failed. */
async function killUnderLoad(idempotent: boolean): Promise<{ recoveryMs: number; failed: number; calls: number }> {
  await using pool = await Pool.start({ ...base, size: 4 });
  let stop = false;
  let failed = 0;
  let calls = 0;
  const load = Array.from({ length: 8 }, async () => {
    while (!stop) {
      calls += 1;
      await pool.call("block", { seconds: 0.01 }, { idempotent, timeoutMs: 10_000 }).catch(() => failed += 1);
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const victim = pool.workerPids[0]!;
  const killedAt = performance.now();
  process.kill(victim, "SIGKILL");
  await waitUntil(() => !pool.workerPids.includes(victim), 5_000);
  await waitUntil(() => pool.stats().readyWorkers === 4, 10_000);
  const recoveryMs = performance.now() - killedAt;
  await new Promise((resolve) => setTimeout(resolve, 200));
  stop = true;
  await Promise.all(load);
  return { recoveryMs, failed, calls };
}

/** CPU used by an idle pool of 4 (host and workers) over IDLE_SECONDS, as % of one core. */
async function idleCpuPercent(heartbeatIntervalMs: number): Promise<number> {
  await using pool = await Pool.start({ ...base, size: 4, heartbeatIntervalMs });
  return await cpuPercentWhileIdle(pool.workerPids, IDLE_SECONDS);
}

console.log(`pool supervision on ${RUNTIME} (${REPETITIONS} repetitions, medians)\n`);
const ready1 = await readyTimeMs(1);
const ready8 = await readyTimeMs(8);
printTable(["start-up", "ms"], [["1 worker ready", ready1.toFixed(0)], ["8 workers ready", ready8.toFixed(0)]]);

const plain = await killUnderLoad(false);
const retried = await killUnderLoad(true);
console.log();
printTable(["SIGKILL one of 4 workers under load (8 in flight)", "back to full size ms", "calls", "failed"], [
  ["without retry", plain.recoveryMs.toFixed(0), String(plain.calls), String(plain.failed)],
  ["with retry of idempotent calls", retried.recoveryMs.toFixed(0), String(retried.calls), String(retried.failed)],
]);

const withHeartbeat = await idleCpuPercent(5_000);
const withoutHeartbeat = await idleCpuPercent(2_147_483_647);
console.log();
printTable([`idle pool of 4 over ${IDLE_SECONDS} s`, "CPU % of one core"], [
  ["heartbeat every 5 s (default)", withHeartbeat.toFixed(2)],
  ["heartbeat off", withoutHeartbeat.toFixed(2)],
]);
console.log(`\nheartbeat cost: ${(withHeartbeat - withoutHeartbeat).toFixed(2)} percentage points of one core`);
