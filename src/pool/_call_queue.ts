/**
 * Calls waiting for a worker: bounded, each with a queue-wait deadline and an abort signal, and
 * optionally bound to one worker (a strict session).
 *
 * @module
 */
import { setTimeout } from "node:timers";
import type { WorkerHandle } from "./_worker_handle.ts";

interface Waiter {
  resolve: (worker: WorkerHandle) => void;
  reject: (reason: unknown) => void;
  /** When set, only this worker may take the call. */
  target: WorkerHandle | undefined;
}

/** FIFO of waiting calls. */
export class CallQueue {
  readonly #waiters = new Set<Waiter>();
  #targeted = 0;

  get length(): number {
    return this.#waiters.size;
  }

  /**
   * Waits for `drain` to hand over a worker. Rejects with `onTimeout()` after `timeoutMs`, or with
   * `signal.reason` when aborted; either way the call is removed and never runs.
   */
  wait(
    target: WorkerHandle | undefined,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    onTimeout: () => unknown,
  ): Promise<WorkerHandle> {
    return new Promise((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (this.#waiters.delete(waiter) && waiter.target) this.#targeted -= 1;
      };
      const waiter: Waiter = {
        target,
        resolve: (worker) => {
          finish();
          resolve(worker);
        },
        reject: (reason) => {
          finish();
          reject(reason);
        },
      };
      const onAbort = () => waiter.reject(signal!.reason);
      const timer = setTimeout(() => waiter.reject(onTimeout()), timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(waiter);
      if (target) this.#targeted += 1;
    });
  }

  /**
   * Hands workers to waiters in arrival order. `pick(target)` returns a worker with room (the
   * target itself for bound waiters), or undefined.
   */
  drain(pick: (target: WorkerHandle | undefined) => WorkerHandle | undefined): void {
    for (const waiter of this.#waiters) {
      const worker = pick(waiter.target);
      if (worker) {
        worker.inFlight += 1;
        waiter.resolve(worker);
      } else if (this.#targeted === 0) {
        // Nothing is free for an unbound waiter, so nothing is free for those behind it either.
        return;
      }
    }
  }

  /** Rejects waiters bound to `worker` (it is gone) with `reason(waiterTarget)`. */
  rejectBoundTo(worker: WorkerHandle, reason: () => unknown): void {
    for (const waiter of this.#waiters) if (waiter.target === worker) waiter.reject(reason());
  }

  /** Rejects every waiter. */
  rejectAll(reason: () => unknown): void {
    for (const waiter of this.#waiters) waiter.reject(reason());
  }
}
