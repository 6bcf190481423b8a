/**
 * The fast lane's poller: one per process, across every lane. While a lane has replies to wait
 * for, it is polled on every turn of the event loop (`setImmediate`, so timers and I/O still
 * run); a lane leaves the poller when it is idle or parked.
 *
 * @module
 */

/** A lane as the poller sees it: `poll` reads what arrived and says whether to keep spinning. */
export interface Pollable {
  poll(now: number): boolean;
}

const spinning = new Set<Pollable>();
let scheduled = false;

/** Polls `lane` on the coming event-loop turns until its `poll` returns false. */
export function keepPolling(lane: Pollable): void {
  spinning.add(lane);
  if (scheduled) return;
  scheduled = true;
  setImmediate(pollTurn);
}

/** Stops polling `lane` (it closed). */
export function stopPolling(lane: Pollable): void {
  spinning.delete(lane);
}

function pollTurn(): void {
  scheduled = false;
  const now = performance.now();
  for (const lane of spinning) {
    if (!lane.poll(now)) spinning.delete(lane);
  }
  if (spinning.size > 0 && !scheduled) {
    scheduled = true;
    setImmediate(pollTurn);
  }
}
