/**
 * Shared-memory lifecycle events of this process's `Region`s: allocate (create), open, release
 * (a reference given back) and close (unmapped). Telemetry subscribes here; the native calls never
 * wait on a listener, and a listener that throws is isolated.
 *
 * @module
 */

/** One shared-memory lifecycle event. */
export interface RegionEvent {
  kind: "allocate" | "open" | "release" | "close";
  /** The region's name, `/snakepit-<instance>-<hex>`. */
  name: string;
  /** The region's payload size in bytes. */
  payloadBytes: number;
  /** For `release`: whether that was the last reference (the region was unlinked). */
  unlinked?: boolean;
}

const listeners = new Set<(event: RegionEvent) => void>();

/**
 * Subscribes to the region events of this process; returns the function that unsubscribes.
 *
 * @example
 * ```ts
 * import { onRegionEvent } from "./mod.ts";
 * const stop = onRegionEvent((event) => console.log(event.kind, event.name));
 * stop();
 * ```
 */
export function onRegionEvent(listener: (event: RegionEvent) => void): () => void {
  if (typeof listener !== "function") {
    throw new TypeError(
      `Cannot subscribe to region events: listener must be a function, received ${typeof listener}`,
    );
  }
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Emits an event to every listener (internal to ffi/). */
export function emitRegionEvent(event: RegionEvent): void {
  if (listeners.size === 0) return;
  for (const listener of listeners) {
    try {
      listener(event);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}
