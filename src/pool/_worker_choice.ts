/**
 * Which worker takes the next call: the least loaded with a free run slot; failing that, room in
 * a fast-lane worker's ring (pipelining), while calls waiting (in the queue and in rings) stay
 * under maxQueue.
 *
 * @module
 */
import type { WorkerHandle } from "./_worker_handle.ts";

/** Calls waiting to run: `queued` in the pool's queue, plus those in workers' fast-lane rings. */
export function waitingCount(queued: number, workers: Iterable<WorkerHandle>): number {
  let waiting = queued;
  for (const worker of workers) waiting += Math.max(0, worker.inFlight - worker.concurrency);
  return waiting;
}

/**
 * A worker with room for one more call, or undefined. `target`: that worker only (strict-queue
 * sessions). `waiting()` counts the calls waiting now (checked only before pipelining).
 */
export function pickWorker(
  workers: Iterable<WorkerHandle>,
  target: WorkerHandle | undefined,
  waiting: () => number,
  maxQueue: number,
): WorkerHandle | undefined {
  if (target) {
    if (target.state !== "ready") return undefined;
    if (target.inFlight < target.concurrency) return target;
    return target.inFlight < target.capacity && waiting() < maxQueue ? target : undefined;
  }
  let best: WorkerHandle | undefined;
  let pipelined: WorkerHandle | undefined;
  for (const worker of workers) {
    if (worker.state !== "ready") continue;
    if (worker.inFlight < worker.concurrency) {
      if (!best || worker.inFlight < best.inFlight) best = worker;
    } else if (worker.inFlight < worker.capacity && (!pipelined || worker.inFlight < pipelined.inFlight)) {
      pipelined = worker;
    }
  }
  if (best || !pipelined) return best;
  return waiting() < maxQueue ? pipelined : undefined;
}
