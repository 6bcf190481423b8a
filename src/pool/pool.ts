/**
 * The pool: supervised Python workers, called as async functions.
 *
 * @module
 */
import process from "node:process";
import type { WireRequest, WorkerDescription } from "../bridge/transport.ts";
import {
  ConfigurationError,
  PoolClosedError,
  PoolSaturatedError,
  QueueTimeoutError,
  SessionLostError,
  WorkerBusyError,
} from "../errors/pool_errors.ts";
import { resolvePython } from "../python_env/resolve.ts";
import { PoolEvents, type PoolEventMap, type PoolEventName } from "./events.ts";
import { type CallOptions, parseCallOptions, parsePoolOptions, type PoolOptions, type ResolvedPoolOptions } from "./options.ts";
import { defaultStateDirectory, reapDeadRuns, RegistryFile } from "./registry.ts";
import { CallCounters, type PoolStats, workerStats } from "./stats.ts";
import { CallQueue } from "./_call_queue.ts";
import { type CallContext, CallRunner } from "./_call_runner.ts";
import { trackPool, untrackPool } from "./_host_signals.ts";
import { nativeLibraryEnv, newCorrelationId, randomHex } from "./_ids.ts";
import { workerSpec } from "./_worker_spec.ts";
import { SessionTable } from "./_sessions.ts";
import { Supervisor } from "./_supervisor.ts";
import type { WorkerHandle } from "./_worker_handle.ts";
import { CircuitBreaker } from "../reliability/circuit_breaker.ts";
import { Executor } from "../reliability/executor.ts";
import { HealthMonitor } from "../reliability/health_monitor.ts";
import type { RetryOptions } from "../reliability/retry_policy.ts";
import { RegionReaping } from "./_region_reaping.ts";
import { laneRequestFor } from "./_lane_setup.ts";
import { pickWorker, waitingCount } from "./_worker_choice.ts";
import { type CallPreparation, prepareCall } from "./_prepare_call.ts";
import { PoolTensors } from "./_tensor_plane.ts";
import type { TensorDtype } from "../tensor/dtypes.ts";
import type { Tensor, TensorFromOptions } from "../tensor/tensor.ts";

/**
 * A pool of Python worker processes.
 *
 * @example
 * ```ts
 * import { Pool } from "@snakepit/snakepit";
 * await using pool = await Pool.start({ adapter: "snakepit_bridge.examples.numeric:NumericAdapter", size: 2 });
 * console.log(await pool.call("add", { a: 1, b: 2 })); // 3
 * ```
 */
export class Pool implements AsyncDisposable {
  readonly #options: ResolvedPoolOptions;
  readonly #runId = randomHex(8);
  readonly #events = new PoolEvents();
  readonly #queue = new CallQueue();
  readonly #sessions: SessionTable;
  readonly #counters = new CallCounters();
  readonly #registry: RegistryFile;
  readonly #supervisor: Supervisor;
  readonly #runner: CallRunner;
  readonly #executor: Executor;
  /** The pool's health monitor: crashes and call failures over a window. */
  readonly health: HealthMonitor;
  /** The pool's circuit breaker, when `options.breaker` enabled one. */
  readonly breaker: CircuitBreaker | undefined;
  #requestSequence = 0;
  #closing: Promise<void> | undefined;
  #regions: RegionReaping | undefined;
  readonly #tensors: PoolTensors;
  readonly #preparation: CallPreparation;

  private constructor(options: ResolvedPoolOptions, pythonPath: string, stateDirectory: string) {
    this.#options = options;
    this.#tensors = new PoolTensors(options);
    this.#preparation = {
      options,
      counters: this.#counters,
      checkOpen: (tool) => {
        if (this.#closing) throw new PoolClosedError(`Cannot call "${tool}": pool "${this.name}" is closed`);
      },
      nextRequestId: () => `${this.#runId}-${(this.#requestSequence++).toString(36)}`,
      transfer: (requestId) => this.#tensors.transfer(requestId),
      timed: () => this.#events.has("call:end"),
    };
    for (const [name, listener] of Object.entries(options.on)) {
      this.#events.on(name as PoolEventName, listener as (event: unknown) => void);
    }
    this.#sessions = new SessionTable(options.sessionsMax, options.sessionTtlMs);
    this.#registry = new RegistryFile(stateDirectory, {
      runId: this.#runId,
      instance: options.instance,
      pool: options.name,
      hostPid: process.pid,
      startedAt: new Date().toISOString(),
    });
    const nativeEnv = nativeLibraryEnv(options.nativeLibraryPath);
    // The environment is read at each spawn: the tensor settings are known only once started.
    const env = () => ({ ...nativeEnv, ...this.#tensors.workerEnv(), ...options.env });
    this.#supervisor = new Supervisor(options, (id) => workerSpec(options, id, pythonPath, this.#runId, env()), this.#events, this.#registry, {
      onReady: () => this.#drain(),
      onGone: (worker) => this.#workerGone(worker),
      onTick: (now) => {
        this.#sessions.sweep(now);
        this.#regions?.tick(now);
      },
      laneRequest: () =>
        laneRequestFor(options, this.#regions?.library, (worker) => this.#supervisor.kill(worker, "lane-protocol")),
    });
    this.health = new HealthMonitor({ name: options.name, ...options.health });
    this.breaker = options.breaker ? new CircuitBreaker({ name: options.name, ...options.breaker }) : undefined;
    // The executor records nothing in the monitor itself: every attempt is recorded by the runner.
    this.#executor = new Executor({ name: options.name, retry: options.retry, breaker: this.breaker });
    this.#runner = new CallRunner(options, this.#supervisor, this.#events, (worker) => this.#release(worker), this.health);
    this.#events.on("worker:exit", (event) => {
      if (!event.expected) {
        this.health.recordCrash(event);
        // Regions the dead worker alone held (results not yet handed over) go now.
        this.#regions?.reapNow();
      }
    });
  }

  /**
   * Starts the workers (`startConcurrency` at a time) and resolves once `minReady` (default: all)
   * are ready and answered a ping. Workers of dead earlier runs of the same instance are reaped
   * first.
   *
   * @throws TypeError | RangeError for malformed options (naming the option and the value)
   * @throws ConfigurationError when the interpreter is missing
   * @throws WorkerStartError when workers fail to start (with the Python traceback of an import
   *   error), as soon as `minReady` is out of reach; no process is left behind
   */
  static async start(options: PoolOptions): Promise<Pool> {
    const resolved = parsePoolOptions(options);
    const python = resolvePython(resolved.pythonPath);
    const stateDirectory = resolved.stateDirectory ?? defaultStateDirectory();
    reapDeadRuns(stateDirectory, resolved.instance);
    const pool = new Pool(resolved, python.path, stateDirectory);
    pool.#regions = await RegionReaping.start(
      nativeLibraryEnv(resolved.nativeLibraryPath).SNAKEPIT_NATIVE_LIB,
      (reaped, scanned) => pool.#events.emit("pool:regions-reaped", { pool: resolved.name, reaped, scanned }),
    );
    if (resolved.transport === "fast-lane" && !pool.#regions) {
      await pool.close();
      throw new ConfigurationError(
        'Cannot start pool: options.transport is "fast-lane" but the native library could not be loaded',
        { suggestion: 'run `make setup` (or set SNAKEPIT_NATIVE_LIB), or use transport "auto" or "grpc"' },
      );
    }
    pool.#tensors.attach(pool.#regions?.library);
    if (resolved.handleSignals) trackPool(pool);
    try {
      await pool.#supervisor.startInitial();
    } catch (error) {
      await pool.close();
      throw error;
    }
    pool.#tensors.negotiate(pool.#supervisor.workers);
    return pool;
  }

  /** The pool's name. */
  get name(): string {
    return this.#options.name;
  }

  /** The number of workers the pool keeps running. */
  get size(): number {
    return this.#options.size;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Pids of the workers taking calls. */
  get workerPids(): number[] {
    return [...this.#supervisor.workers].flatMap((worker) => worker.state === "ready" ? [worker.process.pid!] : []);
  }

  /** Replacements started since the pool started (after crashes, kills and recycling). */
  get restarts(): number {
    return this.#supervisor.restarts;
  }

  /** Whether tensors and tables travel through shared memory (else copied; see `zeroCopyReason`). */
  get zeroCopy(): boolean {
    return this.#tensors.plane.zeroCopy;
  }

  /** Why values are copied instead of shared, or undefined when they are shared. */
  get zeroCopyReason(): string | undefined {
    return this.#tensors.copyReason;
  }

  /**
   * A zero-filled tensor to fill and pass to calls: a `SharedTensor` (no copy per call) when the
   * pool shares memory, else a `Tensor`. Release it when done; the pool's close releases it too.
   *
   * @throws {TypeError | RangeError} a bad shape or dtype
   * @throws {SharedMemoryError} /dev/shm is full (the message says how much is free)
   */
  tensor(shape: readonly number[], dtype: TensorDtype): Tensor {
    return this.#tensors.tensor(shape, dtype);
  }

  /** A tensor holding a copy of `data` (the one copy in), shared when the pool shares memory. */
  tensorFrom(data: ArrayBufferView, options: TensorFromOptions = {}): Tensor {
    return this.#tensors.tensorFrom(data, options);
  }

  /** Subscribes to a pool event; returns the function that unsubscribes. */
  on<K extends PoolEventName>(name: K, listener: (event: PoolEventMap[K]) => void): () => void {
    return this.#events.on(name, listener);
  }

  /** The tools and capabilities a worker reported at start-up. */
  describe(): WorkerDescription {
    const worker = [...this.#supervisor.workers][0];
    if (!worker) throw new PoolClosedError(`Pool "${this.name}" has no running worker to describe`);
    return worker.description;
  }

  /** A snapshot of counters, workers and latency quantiles. */
  stats(): PoolStats {
    const now = Date.now();
    const workers = workerStats(this.#supervisor.workers, now);
    const inFlight = workers.reduce((sum, worker) => sum + worker.inFlight, 0);
    const ready = this.#supervisor.readyCount;
    const counters = this.#counters;
    return {
      name: this.name,
      state: this.#closing ? "closed" : this.#supervisor.degraded ? "degraded" : "running",
      size: this.size,
      readyWorkers: ready,
      requests: counters.requests,
      queued: this.#waitingCount(),
      inFlight,
      completed: counters.completed,
      failed: counters.failed,
      errorsByCode: { ...counters.errorsByCode },
      restarts: this.#supervisor.restarts,
      sessions: this.#sessions.size,
      utilization: ready === 0 ? 0 : Math.min(1, inFlight / (ready * this.#options.concurrentTasksPerWorker)),
      workers,
      runTimeMs: counters.runTime.summary(),
      queueWaitMs: counters.queueWait.summary(),
    };
  }

  /**
   * Calls a Python tool with keyword arguments and resolves with its decoded result.
   *
   * @param tool the tool's name
   * @param args keyword arguments (a plain object); values must be encodable
   * @param options timeout, queue budget, abort signal, session and trace context
   * @throws PythonError (and subclasses) when the tool raised
   * @throws SerializationError when `args` cannot be encoded (nothing is sent)
   * @throws PoolSaturatedError, QueueTimeoutError, CallTimeoutError, WorkerCrashedError,
   *   WorkerBusyError, SessionLostError, PoolClosedError; `signal.reason` when aborted
   */
  call<T = unknown>(tool: string, args: Record<string, unknown> = {}, options: CallOptions = {}): Promise<T> {
    // Not async: the runner's promise is returned as is (one promise and one await fewer per
    // call); what preparing throws becomes a rejection, as it would in an async function.
    try {
      if (options?.idempotent || options?.retry || this.breaker) return this.#callWithPolicy<T>(tool, args, options);
      const { request, context } = this.#prepare(tool, args, options);
      return this.#runner.call<T>(request, context, this.#acquireFor);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The executor path: breaker, retry with back-off, one correlation id across attempts. */
  #callWithPolicy<T>(tool: string, args: Record<string, unknown>, options: CallOptions): Promise<T> {
    const { idempotent, retry, signal, ...rest } = parseCallOptions(options, tool);
    const correlationId = rest.correlationId ?? newCorrelationId();
    return this.#executor.run<T>((attemptSignal) => {
      const { request, context } = this.#prepare(tool, args, { ...rest, correlationId, signal: attemptSignal });
      return this.#runner.call<T>(request, context, this.#acquireFor);
    }, { idempotent: idempotent ?? false, retry: retry as RetryOptions | false | undefined, signal, label: tool });
  }

  /**
   * Calls a generator tool and yields each decoded item; breaking out of the loop cancels it.
   *
   * @example
   * ```ts
   * // for await (const n of pool.stream("count", { n: 3 })) console.log(n);
   * ```
   */
  stream<T = unknown>(tool: string, args: Record<string, unknown> = {}, options: CallOptions = {}): AsyncGenerator<T> {
    const { request, context } = this.#prepare(tool, args, options);
    return this.#runner.stream<T>(request, context, this.#acquireFor);
  }

  /**
   * Stops every worker: new calls reject with `PoolClosedError`, queued calls reject, in-flight
   * calls get `shutdownTimeoutMs` to finish, then workers get SIGTERM and, after the same grace,
   * SIGKILL to their whole process group. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#queue.rejectAll(() => new PoolClosedError(`Pool "${this.name}" closed before the call reached a worker`));
    const deadline = Date.now() + this.#options.shutdownTimeoutMs;
    while ([...this.#supervisor.workers].some((worker) => worker.inFlight > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    this.#runner.closing = true;
    await this.#supervisor.close(this.#options.shutdownTimeoutMs);
    this.#registry.delete();
    this.#regions?.close();
    untrackPool(this);
  }

  #prepare(tool: string, args: Record<string, unknown>, options: CallOptions): { request: WireRequest; context: CallContext } {
    return prepareCall(this.#preparation, tool, args, options);
  }

  /** `#acquire`, bound once (the runner calls it; a closure per call would cost more). */
  readonly #acquireFor = (request: WireRequest, context: CallContext) => this.#acquire(request, context);

  /** Finds a worker for a call: its session's, a free one, or a place in the queue; synchronous when one is free. */
  #acquire(request: WireRequest, context: CallContext): WorkerHandle | Promise<WorkerHandle> {
    if (this.#closing) throw new PoolClosedError(`Cannot call "${context.tool}": pool "${this.name}" is closed`);
    const sessionId = context.sessionId;
    let target: WorkerHandle | undefined;
    if (sessionId !== undefined) {
      const route = this.#sessions.route(sessionId, context.sessionMode !== "hint", Date.now());
      request.sessionId = route.wireId;
      const preferred = route.worker;
      // The session's worker counts as busy while it runs a call (even with room in its ring):
      // hint mode then falls back, strict-fail-fast refuses, strict-queue waits (pipelined).
      if (preferred && preferred.inFlight < preferred.concurrency) return this.#take(preferred, sessionId);
      if (preferred && context.sessionMode === "strict-fail-fast") {
        throw new WorkerBusyError(
          `Cannot call "${context.tool}": session "${sessionId}"'s worker ${preferred.id} is busy (strict-fail-fast)`,
          { correlationId: context.correlationId, suggestion: "retry later, or use sessionMode \"strict-queue\" to wait" },
        );
      }
      if (preferred && context.sessionMode === "strict-queue") target = preferred;
    }
    if (!target) {
      const free = this.#pickFree();
      if (free) return this.#take(free, sessionId);
    }
    const waiting = this.#waitingCount();
    if (waiting >= this.#options.maxQueue) {
      throw new PoolSaturatedError(
        `Cannot call "${context.tool}": pool "${this.name}" is saturated (${waiting} calls queued, maxQueue ${this.#options.maxQueue})`,
        { maxQueue: this.#options.maxQueue, correlationId: context.correlationId, suggestion: "retry with back-off, or raise size or maxQueue" },
      );
    }
    return this.#queue.wait(target, context.queueTimeoutMs, context.signal, () =>
      new QueueTimeoutError(
        `Call "${context.tool}" waited ${context.queueTimeoutMs} ms for a worker and was dropped without running`,
        { queueTimeoutMs: context.queueTimeoutMs, correlationId: context.correlationId },
      )).then((worker) => {
        if (sessionId !== undefined) this.#sessions.pin(sessionId, worker);
        return worker;
      });
  }

  #take(worker: WorkerHandle, sessionId: string | undefined): WorkerHandle {
    worker.inFlight += 1;
    if (sessionId !== undefined) this.#sessions.pin(sessionId, worker);
    return worker;
  }

  /** A worker with room for the next call (see `pickWorker`), or undefined. */
  #pickFree(target?: WorkerHandle): WorkerHandle | undefined {
    return pickWorker(this.#supervisor.workers, target, () => this.#waitingCount(), this.#options.maxQueue);
  }

  #waitingCount(): number {
    return waitingCount(this.#queue.length, this.#supervisor.workers);
  }

  #release(worker: WorkerHandle): void {
    worker.inFlight -= 1;
    worker.callsServed += 1;
    const callsMax = this.#options.maxCallsPerWorker;
    if (callsMax > 0 && worker.callsServed >= callsMax) this.#supervisor.recycle(worker, "calls");
    this.#supervisor.stopIfDrained(worker);
    this.#drain();
  }

  #drain(): void {
    if (this.#queue.length > 0) this.#queue.drain((target) => this.#pickFree(target));
  }

  #workerGone(worker: WorkerHandle): void {
    this.#sessions.workerGone(worker);
    this.#queue.rejectBoundTo(worker, () =>
      new SessionLostError(`A session's worker ${worker.id} exited while its call waited; the session's state is gone`, {
        sessionId: "",
        reason: "worker_exited",
      }));
  }
}

