/**
 * Session affinity: which worker holds a session's state, with a TTL and a count limit.
 *
 * @module
 */
import { SessionLostError } from "../errors/pool_errors.ts";
import type { WorkerHandle } from "./_worker_handle.ts";

type LostReason = "worker_exited" | "expired" | "evicted";

interface SessionEntry {
  worker: WorkerHandle | undefined;
  /** The id the worker sees: the session id, suffixed for a later incarnation of the same id. */
  wireId: string;
  lastUsedAt: number;
  lost: LostReason | undefined;
}

/** What routing needs to know about a session. */
export interface SessionRoute {
  /** The worker holding the session's state, if it still takes calls. */
  worker: WorkerHandle | undefined;
  wireId: string;
}

/** Session ids to workers, bounded by `sessionsMax`, expiring after `sessionTtlMs` idle. */
export class SessionTable {
  readonly #entries = new Map<string, SessionEntry>();
  /**
   * Sessions that ended (worker gone, expired, evicted), remembered (bounded by `sessionsMax`) so
   * that the next call can say why, and so that a new session of the same id gets a new wire id:
   * no state of the old one on a live worker leaks into it.
   */
  readonly #retired = new Map<string, { reason: LostReason; reported: boolean }>();
  #incarnations = 0;

  constructor(readonly sessionsMax: number, readonly sessionTtlMs: number) {}

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Finds (or creates) the route of a session. In strict modes a session that ended throws
   * `SessionLostError` once; the call after it starts a new session.
   */
  route(sessionId: string, strict: boolean, now: number): SessionRoute {
    let entry = this.#entries.get(sessionId);
    if (entry) {
      const ended: LostReason | undefined = now - entry.lastUsedAt > this.sessionTtlMs
        ? "expired"
        // A worker that is draining or stopping takes no calls: its sessions are as good as gone.
        : entry.lost ?? (entry.worker && entry.worker.state !== "ready" ? "worker_exited" : undefined);
      if (ended) {
        this.#retire(sessionId, ended);
        entry = undefined;
      }
    }
    if (!entry) {
      const retired = this.#retired.get(sessionId);
      if (retired && strict && !retired.reported) {
        // Said once; the call after this one starts a new session (with a new wire id).
        retired.reported = true;
        throw new SessionLostError(
          `Session "${sessionId}" is lost (${retired.reason.replace("_", " ")}); its state is gone. ` +
            "Call again to start a new session",
          { sessionId, reason: retired.reason },
        );
      }
      this.#retired.delete(sessionId);
      const incarnation = this.#incarnations++;
      entry = { worker: undefined, wireId: retired ? `${sessionId}~${incarnation}` : sessionId, lastUsedAt: now, lost: undefined };
      this.#entries.set(sessionId, entry);
      this.#evictOverflow();
    } else {
      // Refresh recency for the least-recently-used eviction order.
      this.#entries.delete(sessionId);
      this.#entries.set(sessionId, entry);
    }
    entry.lastUsedAt = now;
    return { worker: entry.worker?.state === "ready" ? entry.worker : undefined, wireId: entry.wireId };
  }

  /** Records the worker a session's call was dispatched to (its first call pins it). */
  pin(sessionId: string, worker: WorkerHandle): void {
    const entry = this.#entries.get(sessionId);
    if (entry && !entry.worker) entry.worker = worker;
  }

  /** Marks every session of `worker` lost: their state died with it. */
  workerGone(worker: WorkerHandle): void {
    for (const entry of this.#entries.values()) {
      if (entry.worker === worker) entry.lost = "worker_exited";
    }
  }

  /** Retires sessions idle past the TTL (called periodically; lookups also check). */
  sweep(now: number): void {
    for (const [sessionId, entry] of this.#entries) {
      if (now - entry.lastUsedAt > this.sessionTtlMs) this.#retire(sessionId, "expired");
    }
  }

  #retire(sessionId: string, reason: LostReason): void {
    this.#entries.delete(sessionId);
    this.#retired.delete(sessionId);
    this.#retired.set(sessionId, { reason, reported: false });
    if (this.#retired.size > this.sessionsMax) this.#retired.delete(this.#retired.keys().next().value as string);
  }

  #evictOverflow(): void {
    while (this.#entries.size > this.sessionsMax) this.#retire(this.#entries.keys().next().value as string, "evicted");
  }
}
