/**
 * Keeps a pool at its size: bounded concurrent starts, restarts with exponential back-off and a
 * storm limit, heartbeats, and recycling by calls, age and memory.
 *
 * @module
 */
import { dirname } from "node:path";
import { setInterval, setTimeout } from "node:timers";
import type { SnakepitError } from "../errors/snakepit_error.ts";
import type { WorkerExit } from "../errors/pool_errors.ts";
import type { PoolEvents, WorkerKillReason } from "./events.ts";
import type { ResolvedPoolOptions } from "./options.ts";
import type { RegistryFile } from "./registry.ts";
import type { WorkerSpawnSpec } from "./worker_process.ts";
import { type LaneRequest, WorkerHandle } from "./_worker_handle.ts";

/** What the pool does when the supervisor's workers change. */
export interface SupervisorHooks {
  /** A worker became ready: dispatch queued calls. */
  onReady(worker: WorkerHandle): void;
  /** A worker exited: its sessions are lost. */
  onGone(worker: WorkerHandle): void;
  /** A periodic tick (the heartbeat interval), for housekeeping such as session expiry. */
  onTick(now: number): void;
  /** How new workers are reached: the fast lane's settings, or undefined for gRPC only. */
  laneRequest(): LaneRequest | undefined;
}

/** Supervises the workers of one pool. */
export class Supervisor {
  readonly workers = new Set<WorkerHandle>();
  /** Replacements started after crashes, kills and recycling. */
  restarts = 0;
  #starting = 0;
  #sequence = 0;
  #crashTimes: number[] = [];
  #nextSpawnAt = 0;
  #spawnTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #heartbeatTimer: ReturnType<typeof setInterval>;
  #degraded = false;
  #closing = false;
  readonly #abort = new AbortController();
  readonly #startups = new Set<Promise<unknown>>();
  /** Set while `Pool.start` waits: failed first starts are not retried, they fail the start. */
  #initial: { failed: number; firstError: unknown; settle: (error?: unknown) => void } | undefined;

  constructor(
    readonly options: ResolvedPoolOptions,
    readonly spawnSpec: (workerId: string) => WorkerSpawnSpec,
    readonly events: PoolEvents,
    readonly registry: RegistryFile,
    readonly hooks: SupervisorHooks,
  ) {
    this.#heartbeatTimer = setInterval(() => this.#tick(), options.heartbeatIntervalMs);
    this.#heartbeatTimer.unref();
  }

  /** Workers taking calls. */
  get readyCount(): number {
    let ready = 0;
    for (const worker of this.workers) if (worker.state === "ready") ready += 1;
    return ready;
  }

  get degraded(): boolean {
    return this.#degraded;
  }

  /**
   * Starts the first workers, `startConcurrency` at a time; resolves once `minReady` are ready and
   * rejects, at once, as soon as so many have failed that `minReady` cannot be reached.
   */
  startInitial(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#initial = {
        failed: 0,
        firstError: undefined,
        settle: (error?: unknown) => {
          this.#initial = undefined;
          if (error === undefined) resolve();
          else reject(error);
        },
      };
      this.reconcile();
    });
  }

  /** Starts workers until ready + starting reaches the target size (after any back-off). */
  reconcile(): void {
    if (this.#closing) return;
    const target = this.options.size - (this.#initial?.failed ?? 0);
    let deficit = target - this.readyCount - this.#starting;
    if (deficit <= 0) return;
    const now = Date.now();
    if (!this.#initial && now < this.#nextSpawnAt) {
      if (!this.#spawnTimer) {
        this.#spawnTimer = setTimeout(() => {
          this.#spawnTimer = undefined;
          this.reconcile();
        }, this.#nextSpawnAt - now);
      }
      return;
    }
    while (deficit > 0 && this.#starting < this.options.startConcurrency) {
      this.#spawn();
      deficit -= 1;
    }
  }

  /** Drains a worker and starts its replacement; it stops once its calls finish. */
  recycle(worker: WorkerHandle, reason: "calls" | "age" | "rss"): void {
    if (worker.state !== "ready" || this.#closing) return;
    worker.state = "draining";
    this.events.emit("worker:recycle", { pool: this.options.name, workerId: worker.id, reason });
    this.reconcile();
    this.stopIfDrained(worker);
  }

  /** Stops a draining worker that has no call left. */
  stopIfDrained(worker: WorkerHandle): void {
    if (worker.state === "draining" && worker.inFlight === 0) this.#stop(worker);
  }

  /** Kills a worker at once (its whole group); its calls reject with `WorkerCrashedError`. */
  kill(worker: WorkerHandle, reason: WorkerKillReason): void {
    if (worker.state === "stopping" || worker.state === "exited") return;
    worker.state = "stopping";
    worker.killedAsHung = reason === "heartbeat";
    this.events.emit("worker:killed", { pool: this.options.name, workerId: worker.id, reason });
    worker.process.killNow();
  }

  /** Stops every worker (SIGTERM, then SIGKILL after `graceMs`) and any start in progress. */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    clearInterval(this.#heartbeatTimer);
    clearTimeout(this.#spawnTimer);
    this.#abort.abort(new Error("pool closed"));
    await Promise.allSettled([...this.#startups]);
    await Promise.all([...this.workers].map((worker) => this.#stop(worker, graceMs)));
  }

  #spawn(): void {
    const workerId = `${this.options.name}-${this.#sequence++}`;
    this.#starting += 1;
    const startup = WorkerHandle.start(
      this.spawnSpec(workerId),
      this.options.startTimeoutMs,
      this.options.concurrentTasksPerWorker,
      this.#abort.signal,
      (pid) => this.events.emit("worker:spawn", { pool: this.options.name, workerId, pid }),
      this.hooks.laneRequest(),
    ).then((worker) => this.#onStarted(worker), (error) => this.#onStartFailed(workerId, error));
    this.#startups.add(startup);
    startup.finally(() => this.#startups.delete(startup));
  }

  #onStarted(worker: WorkerHandle): void {
    this.#starting -= 1;
    if (this.#closing) {
      this.#stop(worker);
      return;
    }
    this.workers.add(worker);
    this.registry.add(worker.id, worker.process.pid!, dirname(worker.process.socketPath));
    worker.onExit((exit) => this.#onExit(worker, exit));
    this.events.emit("worker:ready", {
      pool: this.options.name,
      workerId: worker.id,
      pid: worker.process.pid!,
      startupMs: Date.now() - worker.startedAt,
    });
    this.#progress();
    if (this.#initial && this.readyCount >= (this.options.minReady ?? this.options.size)) this.#initial.settle();
    this.hooks.onReady(worker);
    this.reconcile();
  }

  #onStartFailed(workerId: string, error: unknown): void {
    this.#starting -= 1;
    if (this.#closing) return;
    const failure = error as SnakepitError;
    this.events.emit("worker:start-failed", {
      pool: this.options.name,
      workerId,
      code: failure?.code ?? "error",
      message: failure?.message ?? String(error),
    });
    const initial = this.#initial;
    if (initial) {
      initial.failed += 1;
      initial.firstError ??= error;
      this.#progress();
      // Fail fast: once minReady is out of reach, waiting for the other starts only loses time.
      if (this.options.size - initial.failed < (this.options.minReady ?? this.options.size)) {
        initial.settle(initial.firstError);
        return;
      }
    } else {
      this.#recordCrash();
    }
    this.reconcile();
  }

  #onExit(worker: WorkerHandle, exit: WorkerExit): void {
    this.workers.delete(worker);
    this.registry.remove(worker.process.pid);
    const expected = worker.state === "stopping" && !worker.killedAsHung;
    worker.state = "exited";
    this.events.emit("worker:exit", {
      pool: this.options.name,
      workerId: worker.id,
      pid: worker.process.pid,
      exitCode: exit.exitCode,
      signal: exit.signal,
      classification: exit.classification,
      expected,
    });
    this.hooks.onGone(worker);
    if (this.#closing) return;
    this.restarts += 1;
    if (!expected) this.#recordCrash();
    this.reconcile();
  }

  #recordCrash(): void {
    const now = Date.now();
    this.#crashTimes.push(now);
    this.#pruneCrashes(now);
    const crashes = this.#crashTimes.length;
    const delayMs = Math.min(this.options.restartBackoffMaxMs, this.options.restartBackoffMs * 2 ** (crashes - 1));
    this.#nextSpawnAt = Math.max(this.#nextSpawnAt, now + delayMs);
    this.events.emit("worker:restart", { pool: this.options.name, delayMs, crashesInWindow: crashes });
    if (crashes > this.options.restartStormLimit && !this.#degraded) {
      this.#degraded = true;
      this.events.emit("pool:degraded", { pool: this.options.name, crashesInWindow: crashes });
    }
  }

  #pruneCrashes(now: number): void {
    const horizon = now - this.options.restartWindowMs;
    while (this.#crashTimes.length > 0 && this.#crashTimes[0]! < horizon) this.#crashTimes.shift();
  }

  #progress(): void {
    if (!this.#initial) return;
    this.events.emit("pool:progress", {
      pool: this.options.name,
      ready: this.readyCount,
      failed: this.#initial.failed,
      total: this.options.size,
    });
  }

  #stop(worker: WorkerHandle, graceMs = this.options.shutdownTimeoutMs): Promise<unknown> {
    if (worker.state === "exited") return Promise.resolve();
    worker.state = "stopping";
    // Close our end first: Deno's node:http2 aborts the process when a server's GOAWAY arrives
    // on a session that still has streams (nghttp2 find_stream_on_goaway_func assertion).
    worker.transport.close();
    return worker.process.stop(graceMs);
  }

  #tick(): void {
    const now = Date.now();
    this.#pruneCrashes(now);
    if (this.#degraded && this.#crashTimes.length <= this.options.restartStormLimit) {
      this.#degraded = false;
      this.events.emit("pool:recovered", { pool: this.options.name });
    }
    for (const worker of this.workers) {
      if (this.options.maxWorkerAgeMs > 0 && now - worker.startedAt >= this.options.maxWorkerAgeMs) {
        this.recycle(worker, "age");
      }
      this.#heartbeat(worker);
    }
    this.hooks.onTick(now);
  }

  #heartbeat(worker: WorkerHandle): void {
    if (worker.heartbeatPending || (worker.state !== "ready" && worker.state !== "draining")) return;
    worker.heartbeatPending = true;
    worker.transport.ping(this.options.heartbeatIntervalMs).then((info) => {
      worker.heartbeatMisses = 0;
      worker.rssBytes = info.rssBytes;
      const rssMax = this.options.maxWorkerRssMb * 1024 * 1024;
      if (rssMax > 0 && info.rssBytes > rssMax) this.recycle(worker, "rss");
    }, () => {
      if (worker.state === "exited" || worker.state === "stopping") return;
      worker.heartbeatMisses += 1;
      this.events.emit("worker:heartbeat-missed", {
        pool: this.options.name,
        workerId: worker.id,
        misses: worker.heartbeatMisses,
      });
      if (worker.heartbeatMisses >= this.options.heartbeatMissesMax) this.kill(worker, "heartbeat");
    }).finally(() => worker.heartbeatPending = false);
  }
}
