/**
 * The pool: supervised Python workers, called as async functions.
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { ChannelError, type WireRequest, type WorkerDescription } from "../bridge/transport.ts";
import { decodePayload, encodePayload, WIRE_ENCODING } from "../codec/mod.ts";
import { errorFromWire } from "../errors/from_wire.ts";
import {
  CallTimeoutError,
  PoolClosedError,
  TransportError,
  type WorkerExit,
  WorkerCrashedError,
} from "../errors/pool_errors.ts";
import type { SnakepitError } from "../errors/snakepit_error.ts";
import { resolvePython } from "../python_env/resolve.ts";
import { type CallOptions, parseCallOptions, parsePoolOptions, type PoolOptions, type ResolvedPoolOptions } from "./options.ts";
import { WorkerHandle } from "./_worker_handle.ts";
import { nativeLibraryEnv, newTraceparent, randomHex } from "./_ids.ts";

/** Restart back-off starts here and doubles per consecutive failure. */
const RESTART_BACKOFF_MS_MIN = 100;
const RESTART_BACKOFF_MS_MAX = 5_000;
const CANCEL_RPC_TIMEOUT_MS = 1_000;
/** How long a dropped connection waits for the worker's exit event before being reported as is. */
const EXIT_WAIT_MS = 1_000;

interface Waiter {
  resolve: (worker: WorkerHandle) => void;
  reject: (reason: unknown) => void;
}

interface CallContext {
  tool: string;
  correlationId: string;
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
}

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
  readonly #pythonPath: string;
  readonly #socketDirectory: string;
  readonly #runId = randomHex(8);
  readonly #slots: Array<WorkerHandle | undefined>;
  readonly #restartFailures: number[];
  readonly #waiters: Waiter[] = [];
  readonly #restartTimers = new Set<ReturnType<typeof setTimeout>>();
  #closing: Promise<void> | undefined;
  #restarts = 0;

  private constructor(options: ResolvedPoolOptions, pythonPath: string) {
    this.#options = options;
    this.#pythonPath = pythonPath;
    // A private (0700) directory for the workers' sockets; mkdtemp creates it with that mode.
    this.#socketDirectory = mkdtempSync(join(tmpdir(), `snakepit-${options.instance}-`));
    this.#slots = new Array(options.size).fill(undefined);
    this.#restartFailures = new Array(options.size).fill(0);
  }

  /**
   * Starts `size` workers concurrently and resolves when every one is ready and answered a ping.
   *
   * @throws TypeError | RangeError for malformed options (naming the option and the value)
   * @throws ConfigurationError when the interpreter is missing
   * @throws WorkerStartError when a worker fails to start (with the Python traceback of an import
   *   error); no process is left behind
   */
  static async start(options: PoolOptions): Promise<Pool> {
    const resolved = parsePoolOptions(options);
    const python = resolvePython(resolved.pythonPath);
    const pool = new Pool(resolved, python.path);
    const started = await Promise.allSettled(resolved.size > 0 ? pool.#slots.map((_, index) => pool.#startSlot(index)) : []);
    const failure = started.find((result) => result.status === "rejected");
    if (failure) {
      await pool.close();
      throw (failure as PromiseRejectedResult).reason;
    }
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

  /** Pids of the running workers. */
  get workerPids(): number[] {
    return this.#slots.flatMap((worker) => worker?.process.pid !== undefined && worker.state === "ready" ? [worker.process.pid] : []);
  }

  /** Restarts since the pool started. */
  get restarts(): number {
    return this.#restarts;
  }

  /** The tools and capabilities a worker reported at start-up. */
  describe(): WorkerDescription {
    const worker = this.#slots.find((slot) => slot !== undefined);
    if (!worker) throw new PoolClosedError(`Pool "${this.name}" has no running worker to describe`);
    return worker.description;
  }

  /**
   * Calls a Python tool with keyword arguments and resolves with its decoded result.
   *
   * @param tool the tool's name
   * @param args keyword arguments (a plain object); values must be encodable
   * @param options timeout, abort signal, session and trace context
   * @throws PythonError (and subclasses) when the tool raised
   * @throws SerializationError when `args` cannot be encoded (nothing is sent)
   * @throws CallTimeoutError, WorkerCrashedError, PoolClosedError; `signal.reason` when aborted
   */
  async call<T = unknown>(tool: string, args: Record<string, unknown> = {}, options: CallOptions = {}): Promise<T> {
    const { request, context } = this.#prepare(tool, args, options);
    const worker = await this.#acquire(context.signal);
    const crash = this.#crashWatch(worker, context);
    try {
      request.deadlineUnixMs = context.timeoutMs ? Date.now() + context.timeoutMs : 0;
      const outcome = await Promise.race([worker.transport.execute(request, context.signal), crash.promise]);
      if (!outcome.ok) throw errorFromWire(outcome.error, context);
      return decodePayload(outcome.data, outcome.encoding) as T;
    } catch (error) {
      throw await this.#translate(error, worker, request, context);
    } finally {
      crash.dispose();
      this.#release(worker);
    }
  }

  /**
   * Calls a generator tool and yields each decoded item; breaking out of the loop cancels it.
   *
   * @example
   * ```ts
   * // for await (const n of pool.stream("count", { n: 3 })) console.log(n);
   * ```
   */
  async *stream<T = unknown>(tool: string, args: Record<string, unknown> = {}, options: CallOptions = {}): AsyncGenerator<T> {
    const { request, context } = this.#prepare(tool, args, options);
    const worker = await this.#acquire(context.signal);
    const crash = this.#crashWatch(worker, context);
    request.deadlineUnixMs = context.timeoutMs ? Date.now() + context.timeoutMs : 0;
    const iterator = worker.transport.stream(request, context.signal)[Symbol.asyncIterator]();
    try {
      while (true) {
        const next = await Promise.race([iterator.next(), crash.promise]);
        if (next.done) return;
        const event = next.value;
        if (event.kind === "end") return;
        if (event.kind === "error") throw errorFromWire(event.error, context);
        yield decodePayload(event.data, event.encoding) as T;
      }
    } catch (error) {
      throw await this.#translate(error, worker, request, context);
    } finally {
      crash.dispose();
      await iterator.return?.().catch(() => {});
      this.#release(worker);
    }
  }

  /**
   * Stops every worker: new calls reject with `PoolClosedError`, in-flight calls get
   * `shutdownTimeoutMs` to finish, then workers get SIGTERM and, after the same grace, SIGKILL to
   * their whole process group. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    for (const timer of this.#restartTimers) clearTimeout(timer);
    this.#restartTimers.clear();
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new PoolClosedError(`Pool "${this.name}" closed before the call reached a worker`));
    }
    const grace = this.#options.shutdownTimeoutMs;
    const deadline = Date.now() + grace;
    while (this.#slots.some((worker) => worker && worker.inFlight > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await Promise.all(this.#slots.map((worker) => {
      if (!worker) return;
      worker.state = "stopping";
      // Close our end first: Deno's node:http2 aborts the process when a server's GOAWAY arrives
      // on a session that still has streams (nghttp2 find_stream_on_goaway_func assertion).
      worker.transport.close();
      return worker.process.stop(grace);
    }));
    rmSync(this.#socketDirectory, { recursive: true, force: true });
  }

  #prepare(tool: string, args: Record<string, unknown>, options: CallOptions): { request: WireRequest; context: CallContext } {
    if (typeof tool !== "string" || tool.length === 0) {
      throw new TypeError(`Cannot call a tool: tool must be a non-empty string, received ${JSON.stringify(tool)}`);
    }
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      throw new TypeError(`Cannot call "${tool}": args must be an object of keyword arguments, received ${Array.isArray(args) ? "an array" : String(args)}`);
    }
    const parsed = parseCallOptions(options, tool);
    if (this.#closing) throw new PoolClosedError(`Cannot call "${tool}": pool "${this.name}" is closed`);
    parsed.signal?.throwIfAborted();
    const correlationId = parsed.correlationId ?? crypto.randomUUID();
    const encoding = this.#options.encoding;
    return {
      context: { tool, correlationId, timeoutMs: parsed.timeoutMs, signal: parsed.signal },
      request: {
        requestId: randomHex(8),
        tool,
        args: encodePayload(args, encoding, "args"),
        encoding: WIRE_ENCODING[encoding],
        sessionId: parsed.sessionId ?? "",
        deadlineUnixMs: 0,
        correlationId,
        traceparent: parsed.traceparent ?? newTraceparent(),
      },
    };
  }

  /** Rejects when the worker exits while a call runs on it: at once, not when gRPC notices. */
  #crashWatch(worker: WorkerHandle, context: CallContext): { promise: Promise<never>; dispose: () => void } {
    let dispose = () => {};
    const promise = new Promise<never>((_, reject) => {
      dispose = worker.onExit((exit) => reject(this.#crashError(worker, exit, context)));
    });
    promise.catch(() => {});
    return { promise, dispose };
  }

  #crashError(worker: WorkerHandle, exit: WorkerExit, context: CallContext): SnakepitError {
    if (this.#closing && worker.state !== "exited") {
      return new PoolClosedError(`Call "${context.tool}" was stopped because pool "${this.name}" closed`, {
        correlationId: context.correlationId,
      });
    }
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`;
    return new WorkerCrashedError(
      `Worker ${worker.id} (pid ${worker.process.pid}) ${how} while running "${context.tool}" (${exit.classification})`,
      { workerId: worker.id, exit, correlationId: context.correlationId },
    );
  }

  async #translate(error: unknown, worker: WorkerHandle, request: WireRequest, context: CallContext): Promise<unknown> {
    if (!(error instanceof ChannelError)) return error;
    if (context.signal?.aborted) {
      worker.transport.cancel(request.requestId, CANCEL_RPC_TIMEOUT_MS).catch(() => {});
      return context.signal.reason;
    }
    if (error.grpcStatus === 14) {
      // A dropped connection usually means the worker died; its exit event can trail the socket's
      // close by a few milliseconds, so wait (bounded) to report the crash rather than the symptom.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([worker.process.exited, new Promise((resolve) => timer = setTimeout(resolve, EXIT_WAIT_MS))]);
      clearTimeout(timer);
    }
    if (worker.process.exit) return this.#crashError(worker, worker.process.exit, context);
    if (error.grpcStatus === 4 && context.timeoutMs !== undefined) {
      worker.transport.cancel(request.requestId, CANCEL_RPC_TIMEOUT_MS).catch(() => {});
      return new CallTimeoutError(
        `Call "${context.tool}" timed out after ${context.timeoutMs} ms; the worker was told to cancel it`,
        { timeoutMs: context.timeoutMs, correlationId: context.correlationId },
      );
    }
    return new TransportError(`Call "${context.tool}" to worker ${worker.id} failed: ${error.message}`, {
      grpcStatus: error.grpcStatus,
      correlationId: context.correlationId,
      cause: error,
    });
  }

  #acquire(signal: AbortSignal | undefined): Promise<WorkerHandle> {
    const worker = this.#pickWorker();
    if (worker) {
      worker.inFlight += 1;
      return Promise.resolve(worker);
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) this.#waiters.splice(index, 1);
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        resolve: (picked) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(picked);
        },
        reject: (reason) => {
          signal?.removeEventListener("abort", onAbort);
          reject(reason);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #release(worker: WorkerHandle): void {
    worker.inFlight -= 1;
    worker.callsServed += 1;
    this.#drain();
  }

  #drain(): void {
    while (this.#waiters.length > 0) {
      const worker = this.#pickWorker();
      if (!worker) return;
      worker.inFlight += 1;
      this.#waiters.shift()!.resolve(worker);
    }
  }

  #pickWorker(): WorkerHandle | undefined {
    let best: WorkerHandle | undefined;
    for (const worker of this.#slots) {
      if (!worker || worker.state !== "ready" || worker.inFlight >= worker.capacity) continue;
      if (!best || worker.inFlight < best.inFlight) best = worker;
    }
    return best;
  }

  async #startSlot(index: number): Promise<void> {
    const options = this.#options;
    const workerId = `${options.name}-${index}`;
    const sink = options.workerLogs;
    const worker = await WorkerHandle.start({
      workerId,
      pythonPath: this.#pythonPath,
      adapter: options.adapter,
      socketPath: join(this.#socketDirectory, `w${index}-${randomHex(4)}.sock`),
      runId: this.#runId,
      instance: options.instance,
      maxConcurrency: options.concurrentTasksPerWorker,
      env: { ...nativeLibraryEnv(options.nativeLibraryPath), ...options.env },
      cwd: options.cwd,
      onLogLine: sink === "silent"
        ? () => {}
        : sink === "forward"
        ? (line) => process.stderr.write(`[${workerId}] ${line}\n`)
        : (line) => sink(line, workerId),
    }, options.startTimeoutMs, options.concurrentTasksPerWorker);
    if (this.#closing) {
      await worker.process.stop(options.shutdownTimeoutMs);
      return;
    }
    this.#slots[index] = worker;
    this.#restartFailures[index] = 0;
    worker.onExit(() => this.#onWorkerExit(index, worker));
    this.#drain();
  }

  #onWorkerExit(index: number, worker: WorkerHandle): void {
    if (this.#slots[index] === worker) this.#slots[index] = undefined;
    if (this.#closing) return;
    this.#scheduleRestart(index);
  }

  #scheduleRestart(index: number): void {
    const failures = this.#restartFailures[index]!;
    const delay = Math.min(RESTART_BACKOFF_MS_MAX, RESTART_BACKOFF_MS_MIN * 2 ** failures);
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (this.#closing) return;
      this.#restarts += 1;
      this.#startSlot(index).catch(() => {
        this.#restartFailures[index] = failures + 1;
        if (!this.#closing) this.#scheduleRestart(index);
      });
    }, delay);
    this.#restartTimers.add(timer);
  }
}
