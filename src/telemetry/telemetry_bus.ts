/**
 * `TelemetryBus`: one typed stream of telemetry events from pools and circuit breakers, with
 * per-subscriber filters and sampling.
 *
 * @module
 */
import { onRegionEvent, type RegionEvent } from "../../ffi/region_events.ts";
import { z } from "zod";
import type { PoolEventMap } from "../pool/events.ts";
import type { Pool } from "../pool/pool.ts";
import { parseTelemetryOptions } from "./_parse_options.ts";

type CallEnd = PoolEventMap["call:end"];

/** Every telemetry event, by name. */
export interface TelemetryEventMap {
  "call:start": PoolEventMap["call:start"];
  /** A call that succeeded. */
  "call:stop": CallEnd;
  /** A call that failed (`errorCode` says how). */
  "call:exception": CallEnd;
  "worker:spawn": PoolEventMap["worker:spawn"];
  "worker:ready": PoolEventMap["worker:ready"];
  "worker:exit": PoolEventMap["worker:exit"];
  "worker:restart": PoolEventMap["worker:restart"];
  "worker:recycle": PoolEventMap["worker:recycle"];
  "worker:killed": PoolEventMap["worker:killed"];
  "pool:degraded": PoolEventMap["pool:degraded"];
  "pool:recovered": PoolEventMap["pool:recovered"];
  /** A circuit breaker changed state. */
  "breaker:state-change": { circuit: string; from: string; to: string; reason: string };
  /** A health verdict changed (published by whoever checks health). */
  "health:alert": { component: string; status: "pass" | "warn" | "fail"; reason?: string };
  /** This process created (allocate) or mapped (open) a shared-memory region. */
  "shm:allocate": RegionEvent;
  /** This process gave back a reference (release, `unlinked` when it was the last) or unmapped a region (close). */
  "shm:release": RegionEvent;
}

/** A telemetry event name. */
export type TelemetryEventName = keyof TelemetryEventMap;

/** A telemetry event with its name. */
export type TelemetryEvent = { [K in TelemetryEventName]: { name: K; event: TelemetryEventMap[K] } }[TelemetryEventName];

/** Options of `TelemetryBus.subscribe`. */
export interface SubscribeOptions {
  /** Event names to receive. Default: all. */
  names?: TelemetryEventName[];
  /** Further filter; return false to drop. Default: keep all. */
  filter?: (event: TelemetryEvent) => boolean;
  /** Fraction of matching events delivered, 0 to 1 (random sampling). Default 1. */
  sampleRate?: number;
}

const subscribeSchema = z.object({
  names: z.array(z.string(), { invalid_type_error: "must be an array of event names" }).optional(),
  filter: z.custom<(event: TelemetryEvent) => boolean>((value) => typeof value === "function", { message: "must be a function" }).optional(),
  sampleRate: z.number({ invalid_type_error: "must be a number" }).min(0, { message: "must be between 0 and 1" })
    .max(1, { message: "must be between 0 and 1" }).default(1),
}).strict();

/** Anything with `on("state-change", ...)` (a `CircuitBreaker` fits). */
export interface StateChangeSource {
  on(name: "state-change", listener: (change: { circuit: string; from: string; to: string; reason: string }) => void): () => void;
}

const POOL_FORWARDED = ["call:start", "worker:spawn", "worker:ready", "worker:exit", "worker:restart", "worker:recycle", "worker:killed", "pool:degraded", "pool:recovered"] as const;

/**
 * Gathers events from pools and breakers; subscribers pick, filter and sample what they get.
 * A subscriber that throws is isolated from the others.
 *
 * @example
 * ```ts
 * const bus = new TelemetryBus();
 * bus.observePool(pool);
 * bus.subscribe((e) => console.log(e.name, e.event), { names: ["call:exception"], sampleRate: 0.1 });
 * ```
 */
export class TelemetryBus {
  readonly #subscribers = new Set<(event: TelemetryEvent) => void>();

  /** Receives events; returns the function that unsubscribes. */
  subscribe(listener: (event: TelemetryEvent) => void, options: SubscribeOptions = {}): () => void {
    const parsed = parseTelemetryOptions(subscribeSchema, options, "subscribe to telemetry");
    const names = parsed.names ? new Set(parsed.names) : undefined;
    const { filter, sampleRate } = parsed;
    const delivered = (event: TelemetryEvent) => {
      if (names && !names.has(event.name)) return;
      if (sampleRate < 1 && Math.random() >= sampleRate) return;
      if (filter && !filter(event)) return;
      listener(event);
    };
    this.#subscribers.add(delivered);
    return () => this.#subscribers.delete(delivered);
  }

  /** Publishes an event to every subscriber that wants it. */
  publish<K extends TelemetryEventName>(name: K, event: TelemetryEventMap[K]): void {
    if (this.#subscribers.size === 0) return;
    const envelope = { name, event } as TelemetryEvent;
    for (const subscriber of this.#subscribers) {
      try {
        subscriber(envelope);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  /** Forwards a pool's events (`call:end` becomes `call:stop` or `call:exception`); returns the function that stops. */
  observePool(pool: Pool): () => void {
    // The forwarded names mean the same in both maps; TypeScript cannot see that across the union.
    const forward = (name: (typeof POOL_FORWARDED)[number]) =>
      (pool.on as (name: string, listener: (event: unknown) => void) => () => void)(name, (event) => this.publish(name, event as never));
    const unsubscribers = POOL_FORWARDED.map(forward);
    unsubscribers.push(pool.on("call:end", (event) => this.publish(event.ok ? "call:stop" : "call:exception", event)));
    return () => unsubscribers.forEach((unsubscribe) => unsubscribe());
  }

  /**
   * Forwards this process's shared-memory events: create/open as `shm:allocate`, release/close as
   * `shm:release`. Returns the function that stops.
   */
  observeSharedMemory(): () => void {
    return onRegionEvent((event) =>
      this.publish(event.kind === "allocate" || event.kind === "open" ? "shm:allocate" : "shm:release", event));
  }

  /** Forwards a breaker's state changes; returns the function that stops. */
  observeBreaker(breaker: StateChangeSource): () => void {
    return breaker.on("state-change", (change) =>
      this.publish("breaker:state-change", { circuit: change.circuit, from: change.from, to: change.to, reason: change.reason }));
  }
}
