/**
 * The pool's typed events: worker lifecycle and calls. Later layers (metrics, logs, health)
 * subscribe here.
 *
 * @module
 */
import type { ExitClassification } from "../errors/pool_errors.ts";
import type { DataMoved } from "../tensor/_wire.ts";

/** Every event the pool emits, by name. */
export interface PoolEventMap {
  /** A worker process was spawned. */
  "worker:spawn": { pool: string; workerId: string; pid: number | undefined };
  /** A worker became ready (answered a ping). */
  "worker:ready": { pool: string; workerId: string; pid: number; startupMs: number };
  /** A worker failed to start. */
  "worker:start-failed": { pool: string; workerId: string; code: string; message: string };
  /** A worker exited; `expected` is false for crashes. */
  "worker:exit": {
    pool: string;
    workerId: string;
    pid: number | undefined;
    exitCode: number | null;
    signal: string | null;
    classification: ExitClassification;
    expected: boolean;
  };
  /** A replacement was scheduled after a crash. */
  "worker:restart": { pool: string; delayMs: number; crashesInWindow: number };
  /** A worker is being drained and replaced. */
  "worker:recycle": { pool: string; workerId: string; reason: "calls" | "age" | "rss" };
  /** A worker missed a heartbeat; at `heartbeatMissesMax` it is killed. */
  "worker:heartbeat-missed": { pool: string; workerId: string; misses: number };
  /** A worker was killed by the pool (hung heartbeat, or a cancelled tool past its grace). */
  "worker:killed": { pool: string; workerId: string; reason: WorkerKillReason };
  /** Start-up progress: `ready` of `total` workers. */
  "pool:progress": { pool: string; ready: number; failed: number; total: number };
  /** Crashes passed `restartStormLimit` within the window. */
  "pool:degraded": { pool: string; crashesInWindow: number };
  /** The crash rate fell back under the limit. */
  "pool:recovered": { pool: string };
  /** Shared-memory regions whose every holder was dead were unlinked (at start-up, then every minute). */
  "pool:regions-reaped": { pool: string; reaped: number; scanned: number };
  /** A call was dispatched to a worker. */
  "call:start": {
    pool: string;
    tool: string;
    requestId: string;
    correlationId: string;
    /** The W3C traceparent the call carries to Python (the caller's, or a new trace). */
    traceparent: string;
    workerId: string;
    queueWaitMs: number;
  };
  /** A call settled. `errorCode` is the `SnakepitError` code, or `"error"` for anything else. */
  "call:end": {
    pool: string;
    tool: string;
    requestId: string;
    correlationId: string;
    workerId: string | undefined;
    ok: boolean;
    errorCode: string | undefined;
    queueWaitMs: number;
    runMs: number;
    /** The W3C traceparent the call carried to Python. */
    traceparent: string;
    /**
     * Where the call's time went, in ms, for unary calls that reached a worker and answered:
     * encoding the arguments, the transport (the run time less Python's share and decoding),
     * Python (the worker's decode + tool + encode), and decoding the result.
     */
    timing: CallTiming | undefined;
    /**
     * Tensors and tables the call moved, both ways: the path (`shared`: descriptors only,
     * `inline`: under the threshold, `copied`: shared memory unavailable, `mixed`) and the bytes.
     * Undefined when the call carried none.
     */
    data: DataMoved | undefined;
  };
}

/** The time split of one call, in milliseconds. */
export interface CallTiming {
  encodeMs: number;
  transportMs: number;
  pythonMs: number;
  pythonExecuteMs: number;
  decodeMs: number;
}

/** The name of a pool event. */
export type PoolEventName = keyof PoolEventMap;

/**
 * Why the pool killed a worker: missed heartbeats, a cancelled call that did not stop within
 * its grace period, or a fast lane that broke its protocol (never trusted again).
 */
export type WorkerKillReason = "heartbeat" | "cancel-grace" | "lane-protocol";

/** Every pool event name. */
export const POOL_EVENT_NAMES: ReadonlySet<string> = new Set<string>([
  "worker:spawn",
  "worker:ready",
  "worker:start-failed",
  "worker:exit",
  "worker:restart",
  "worker:recycle",
  "worker:heartbeat-missed",
  "worker:killed",
  "pool:progress",
  "pool:degraded",
  "pool:recovered",
  "pool:regions-reaped",
  "call:start",
  "call:end",
] satisfies PoolEventName[]);

/** A minimal typed event emitter; listeners that throw are isolated from the pool. */
export class PoolEvents {
  readonly #listeners = new Map<PoolEventName, Set<(event: never) => void>>();

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends PoolEventName>(name: K, listener: (event: PoolEventMap[K]) => void): () => void {
    if (!POOL_EVENT_NAMES.has(name)) {
      throw new TypeError(`Cannot subscribe: "${name}" is not a pool event; known events: ${[...POOL_EVENT_NAMES].join(", ")}`);
    }
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, set = new Set());
    set.add(listener as (event: never) => void);
    return () => set!.delete(listener as (event: never) => void);
  }

  /** Whether anyone listens to `name` (so callers can skip building the event). */
  has(name: PoolEventName): boolean {
    return (this.#listeners.get(name)?.size ?? 0) > 0;
  }

  emit<K extends PoolEventName>(name: K, event: PoolEventMap[K]): void {
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as (event: PoolEventMap[K]) => void)(event);
      } catch (error) {
        // A faulty subscriber must not break the pool; report it where it cannot be missed.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
