/**
 * `pool.stats()`: counters, per-worker state and latency quantiles.
 *
 * @module
 */
import { Histogram, type Quantiles } from "./histogram.ts";
import type { WorkerHandle } from "./_worker_handle.ts";

/** One worker in `PoolStats`. */
export interface WorkerStats {
  workerId: string;
  pid: number | undefined;
  state: "ready" | "draining" | "stopping" | "exited";
  callsServed: number;
  inFlight: number;
  /** Resident memory from the last heartbeat (0 before the first). */
  rssBytes: number;
  ageMs: number;
  /** How the host reaches the worker: the shared-memory fast lane or gRPC. */
  transport: "fast-lane" | "grpc";
}

/** A snapshot of a pool. */
export interface PoolStats {
  name: string;
  /** `running`, `degraded` (crash storm), or `closed`. */
  state: "running" | "degraded" | "closed";
  size: number;
  readyWorkers: number;
  /** Calls accepted (including those that failed before reaching a worker). */
  requests: number;
  queued: number;
  inFlight: number;
  completed: number;
  failed: number;
  /** Failures by `SnakepitError` code (`"error"` for anything else). */
  errorsByCode: Record<string, number>;
  restarts: number;
  sessions: number;
  /** In-flight calls over the capacity of the ready workers, 0..1. */
  utilization: number;
  workers: WorkerStats[];
  /** Run time from dispatch to settlement, in ms. */
  runTimeMs: Quantiles;
  /** Time spent waiting for a worker, in ms. */
  queueWaitMs: Quantiles;
}

/** The running counters behind `PoolStats`. */
export class CallCounters {
  requests = 0;
  completed = 0;
  failed = 0;
  readonly errorsByCode: Record<string, number> = {};
  readonly runTime = new Histogram();
  readonly queueWait = new Histogram();

  recordFailure(code: string): void {
    this.failed += 1;
    this.errorsByCode[code] = (this.errorsByCode[code] ?? 0) + 1;
  }
}

/** Per-worker stats of a set of workers. */
export function workerStats(workers: Iterable<WorkerHandle>, now: number): WorkerStats[] {
  return [...workers].map((worker) => ({
    workerId: worker.id,
    pid: worker.process.pid,
    state: worker.state,
    callsServed: worker.callsServed,
    inFlight: worker.inFlight,
    rssBytes: worker.rssBytes,
    ageMs: now - worker.startedAt,
    transport: worker.transport.kind,
  }));
}
