// The checks behind /readyz, /startupz and /healthz: each component reports pass, warn or fail.
import type { Pool } from "../pool/pool.ts";
import type { BreakerLike } from "../telemetry/metrics.ts";

/** A component's verdict: `warn` still serves (degraded), `fail` does not. */
export type CheckStatus = "pass" | "warn" | "fail";

/** One component of the `/healthz?verbose` report. */
export interface ComponentReport {
  status: CheckStatus;
  /** Why, when not `pass`. */
  reason?: string;
  /** Anything worth showing an operator. */
  details?: unknown;
}

/** A pool as the router watches it. */
export interface WatchedPool {
  pool: Pool;
  required: boolean;
  minReadyWorkers: number;
  queueHighWaterMark: number | undefined;
  breaker: BreakerLike | undefined;
}

/** A pool's readiness: enough ready workers, breaker not open, queue below its high-water mark. */
export function checkPool(watched: WatchedPool): ComponentReport {
  const { pool } = watched;
  if (pool.closed) return { status: "fail", reason: "pool is closed" };
  const stats = pool.stats();
  const details = {
    state: stats.state,
    size: stats.size,
    readyWorkers: stats.readyWorkers,
    queued: stats.queued,
    inFlight: stats.inFlight,
    restarts: stats.restarts,
    breaker: watched.breaker?.state,
    workers: stats.workers.map((worker) => ({
      workerId: worker.workerId,
      pid: worker.pid,
      state: worker.state,
      inFlight: worker.inFlight,
      rssBytes: worker.rssBytes,
    })),
  };
  if (stats.readyWorkers < watched.minReadyWorkers) {
    return { status: "fail", reason: `${stats.readyWorkers} ready workers, fewer than ${watched.minReadyWorkers}`, details };
  }
  if (watched.breaker?.state === "open") return { status: "fail", reason: "circuit breaker is open", details };
  if (watched.queueHighWaterMark !== undefined && stats.queued >= watched.queueHighWaterMark) {
    return { status: "fail", reason: `${stats.queued} calls queued, at or past ${watched.queueHighWaterMark}`, details };
  }
  if (stats.state === "degraded") return { status: "warn", reason: "crash storm: workers restart often", details };
  if (stats.readyWorkers < stats.size) {
    return { status: "warn", reason: `${stats.readyWorkers} of ${stats.size} workers ready`, details };
  }
  if (watched.breaker?.state === "half_open") return { status: "warn", reason: "circuit breaker is half-open", details };
  return { status: "pass", details };
}

/** The overall verdict: any failing required component fails; a failing optional one warns. */
export function overallStatus(reports: Iterable<[required: boolean, report: ComponentReport]>): CheckStatus {
  let status: CheckStatus = "pass";
  for (const [required, report] of reports) {
    if (report.status === "fail" && required) return "fail";
    if (report.status !== "pass") status = "warn";
  }
  return status;
}

/** Compares secrets in time independent of where they differ. */
export function sameSecret(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  let difference = a.length ^ b.length;
  for (let index = 0; index < b.length; index++) difference |= (a[index] ?? 0) ^ b[index]!;
  return difference === 0;
}
