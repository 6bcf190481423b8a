/**
 * SIGINT / SIGTERM to the host close every open pool before the host exits, so workers get their
 * graceful stop instead of relying on the death signal.
 *
 * @module
 */
import process from "node:process";

interface Closable {
  close(): Promise<void>;
}

const openPools = new Set<Closable>();
let exiting = false;

const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const;

function onSignal(signal: keyof typeof SIGNAL_NUMBERS): void {
  if (exiting) return;
  exiting = true;
  const pools = [...openPools];
  Promise.allSettled(pools.map((pool) => pool.close())).finally(() => {
    // With no other handler, do what the signal would have done: exit with 128 + its number.
    if (process.listenerCount(signal) <= 1) process.exit(128 + SIGNAL_NUMBERS[signal]);
    exiting = false;
  });
}

const onInterrupt = () => onSignal("SIGINT");
const onTerminate = () => onSignal("SIGTERM");

/** Tracks an open pool; installs the handlers while any pool is open. */
export function trackPool(pool: Closable): void {
  if (openPools.size === 0) {
    process.on("SIGINT", onInterrupt);
    process.on("SIGTERM", onTerminate);
  }
  openPools.add(pool);
}

/**
 * Stops tracking a closed pool. The handlers go with the last pool: a signal listener can keep a
 * runtime's event loop alive (Deno), and a host with no pool should get default signal behaviour.
 */
export function untrackPool(pool: Closable): void {
  if (!openPools.delete(pool) || openPools.size > 0) return;
  process.off("SIGINT", onInterrupt);
  process.off("SIGTERM", onTerminate);
}
