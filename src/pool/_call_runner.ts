/**
 * Runs one call on an acquired worker: crash watch, error translation, the cancel-grace rule,
 * counters and call events.
 *
 * @module
 */
import { setTimeout as delay } from "node:timers/promises";
import { ChannelError, type WireRequest } from "../bridge/transport.ts";
import { decodePayload } from "../codec/mod.ts";
import type { CallTransfer } from "../tensor/_wire.ts";
import { uploadBlobs, withBlobs } from "./_blob_transfer.ts";
import { errorFromWire } from "../errors/from_wire.ts";
import {
  CallTimeoutError,
  PoolClosedError,
  QueueTimeoutError,
  TransportError,
  type WorkerExit,
  WorkerCrashedError,
} from "../errors/pool_errors.ts";
import type { SnakepitError } from "../errors/snakepit_error.ts";
import type { CallTiming, PoolEvents } from "./events.ts";
import type { ResolvedPoolOptions, SessionMode } from "./options.ts";
import type { CallCounters } from "./stats.ts";
import type { HealthMonitor } from "../reliability/health_monitor.ts";
import type { Supervisor } from "./_supervisor.ts";
import type { WorkerHandle } from "./_worker_handle.ts";

/** How long a dropped connection waits for the worker's exit event before being reported as is. */
const EXIT_WAIT_MS = 1_000;
/** Interval of `Cancel` polls while waiting for a cancelled tool to stop. */
const CANCEL_POLL_MS = 20;
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;

/** Everything about a call besides its wire request. */
export interface CallContext {
  tool: string;
  correlationId: string;
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
  sessionId: string | undefined;
  sessionMode: SessionMode;
  queueTimeoutMs: number;
  counters: CallCounters;
  /** Time spent encoding the arguments, ms. */
  encodeMs: number;
  /** The call's tensor traffic: regions made for its arguments, what moved. */
  transfer?: CallTransfer;
}

/** Finds a worker for a call: synchronously when one is free, else through the queue. */
export type Acquire = (request: WireRequest, context: CallContext) => WorkerHandle | Promise<WorkerHandle>;

/** Runs calls for one pool. */
export class CallRunner {
  /** Set when the pool closes: crashes then read as closure. */
  closing = false;

  constructor(
    readonly options: ResolvedPoolOptions,
    readonly supervisor: Supervisor,
    readonly events: PoolEvents,
    readonly release: (worker: WorkerHandle) => void,
    readonly health: HealthMonitor,
  ) {}

  async call<T>(request: WireRequest, context: CallContext, acquire: Acquire): Promise<T> {
    const queuedAt = performance.now();
    let worker: WorkerHandle | undefined;
    let dispatchedAt = queuedAt;
    let failure: unknown;
    let holdSlot = false;
    let timing: CallTiming | undefined;
    try {
      while (true) {
        const acquired = acquire(request, context);
        // A worker found at once was dispatched when the call came (the clock is not read
        // again: on Deno each read is a runtime call).
        if (acquired instanceof Promise) {
          worker = await acquired;
          dispatchedAt = performance.now();
        } else {
          worker = acquired;
        }
        this.#started(request, context, worker, dispatchedAt - queuedAt);
        // The fast lane fails its calls itself when the worker exits (its exit closes the
        // transport); gRPC may not notice a dead peer at once, so the exit races the call.
        const crash = worker.transport.kind === "fast-lane" ? undefined : this.#crashWatch(worker, context);
        try {
          request.deadlineUnixMs = context.timeoutMs ? Date.now() + context.timeoutMs : 0;
          if (request.blobs !== undefined) {
            await uploadBlobs(worker.transport, request, context.signal);
            // Uploading is not waiting for a worker: the queue-wait budget restarts now.
            request.queueDeadlineUnixMs = Date.now() + context.queueTimeoutMs;
          }
          const execution = worker.transport.execute(request, context.signal);
          const outcome = crash ? await Promise.race([execution, crash.promise]) : await execution;
          if (request.deadlineUnixMs > 0 && Date.now() >= request.deadlineUnixMs) {
            // A reply that crossed the deadline (the worker's own deadline check, or a host timer
            // firing late) is the timeout, whatever the transport.
            throw new CallTimeoutError(
              `Call "${context.tool}" timed out after ${context.timeoutMs} ms; the worker was told to cancel it`,
              { timeoutMs: context.timeoutMs!, correlationId: context.correlationId },
            );
          }
          if (!outcome.ok) throw errorFromWire(outcome.error, context);
          // Timing is measured only when `call:end` reports it.
          const answeredAt = this.events.has("call:end") ? performance.now() : -1;
          const blobbed = withBlobs(worker.transport, outcome.data, request, context);
          const data = blobbed instanceof Promise ? await blobbed : blobbed;
          const value = decodePayload(data, outcome.encoding, context.transfer) as T;
          if (answeredAt < 0) return value;
          const decodeMs = performance.now() - answeredAt;
          const pythonExecuteMs = outcome.timing.executeNs / 1e6;
          const pythonMs = (outcome.timing.decodeNs + outcome.timing.executeNs + outcome.timing.encodeNs) / 1e6;
          timing = {
            encodeMs: context.encodeMs,
            transportMs: Math.max(0, answeredAt - dispatchedAt - pythonMs),
            pythonMs,
            pythonExecuteMs,
            decodeMs,
          };
          return value;
        } catch (error) {
          if (error instanceof ChannelError && error.notStarted === "worker-gone" && !context.signal?.aborted) {
            // The worker died with this call still waiting in its ring: it never ran, so it goes
            // back to the queue whatever the tool does (as it would have over gRPC).
            this.release(worker);
            worker = undefined;
            dispatchedAt = performance.now();
            continue;
          }
          const translated = await this.#translate(error, worker, context);
          holdSlot = translated.cancelledWhileRunning;
          throw translated.error;
        } finally {
          crash?.dispose();
        }
      }
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      if (worker) holdSlot ? this.#releaseAfterCancel(worker, request.requestId) : this.release(worker);
      this.#ended(request, context, worker, failure, queuedAt, dispatchedAt, timing);
    }
  }

  async *stream<T>(
    request: WireRequest,
    context: CallContext,
    acquire: Acquire,
  ): AsyncGenerator<T> {
    const queuedAt = performance.now();
    let worker: WorkerHandle | undefined;
    let dispatchedAt = queuedAt;
    let failure: unknown;
    let finished = false;
    let holdSlot = false;
    try {
      worker = await acquire(request, context);
      dispatchedAt = performance.now();
      this.#started(request, context, worker, dispatchedAt - queuedAt);
      const crash = this.#crashWatch(worker, context);
      request.deadlineUnixMs = context.timeoutMs ? Date.now() + context.timeoutMs : 0;
      const iterator = worker.transport.stream(request, context.signal)[Symbol.asyncIterator]();
      try {
        while (true) {
          const next = await Promise.race([iterator.next(), crash.promise]);
          if (next.done || next.value.kind === "end") {
            finished = true;
            return;
          }
          if (next.value.kind === "error") {
            finished = true;
            throw errorFromWire(next.value.error, context);
          }
          const data = await withBlobs(worker.transport, next.value.data, request, context);
          yield decodePayload(data, next.value.encoding, context.transfer) as T;
        }
      } catch (error) {
        const translated = await this.#translate(error, worker, context);
        holdSlot = translated.cancelledWhileRunning;
        finished = true;
        throw translated.error;
      } finally {
        crash.dispose();
        // A consumer that stopped early cancelled the generator: hold the slot until it stops.
        if (!finished) holdSlot = true;
        await iterator.return?.().catch(() => {});
      }
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      if (worker) holdSlot ? this.#releaseAfterCancel(worker, request.requestId) : this.release(worker);
      this.#ended(request, context, worker, failure, queuedAt, dispatchedAt, undefined);
    }
  }

  #started(request: WireRequest, context: CallContext, worker: WorkerHandle, queueWaitMs: number): void {
    context.counters.queueWait.record(queueWaitMs);
    if (!this.events.has("call:start")) return;
    this.events.emit("call:start", {
      pool: this.options.name,
      tool: context.tool,
      requestId: request.requestId,
      correlationId: context.correlationId,
      traceparent: request.traceparent,
      workerId: worker.id,
      queueWaitMs,
    });
  }

  #ended(
    request: WireRequest,
    context: CallContext,
    worker: WorkerHandle | undefined,
    failure: unknown,
    queuedAt: number,
    dispatchedAt: number,
    timing: CallTiming | undefined,
  ): void {
    const now = performance.now();
    const runMs = worker ? now - dispatchedAt : 0;
    const errorCode = failure === undefined ? undefined : (failure as SnakepitError)?.code ?? "error";
    if (errorCode === undefined) {
      context.counters.completed += 1;
      this.health.recordSuccess();
    } else {
      context.counters.recordFailure(errorCode);
      this.health.recordFailure(failure);
    }
    if (worker) context.counters.runTime.record(runMs);
    context.transfer?.release();
    if (!this.events.has("call:end")) return;
    this.events.emit("call:end", {
      pool: this.options.name,
      tool: context.tool,
      requestId: request.requestId,
      correlationId: context.correlationId,
      workerId: worker?.id,
      ok: errorCode === undefined,
      errorCode,
      queueWaitMs: worker ? dispatchedAt - queuedAt : now - queuedAt,
      runMs,
      traceparent: request.traceparent,
      timing,
      data: context.transfer?.moved,
    });
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
    if (this.closing) {
      return new PoolClosedError(`Call "${context.tool}" was stopped because pool "${this.options.name}" closed`, {
        correlationId: context.correlationId,
      });
    }
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`;
    return new WorkerCrashedError(
      `Worker ${worker.id} (pid ${worker.process.pid}) ${how} while running "${context.tool}" (${exit.classification})`,
      { workerId: worker.id, exit, correlationId: context.correlationId },
    );
  }

  /** Maps a channel failure to the taxonomy; says whether the tool may still be running. */
  async #translate(
    error: unknown,
    worker: WorkerHandle,
    context: CallContext,
  ): Promise<{ error: unknown; cancelledWhileRunning: boolean }> {
    if (!(error instanceof ChannelError)) return { error, cancelledWhileRunning: false };
    if (context.signal?.aborted) return { error: context.signal.reason, cancelledWhileRunning: true };
    if (error.notStarted === "queue-expired") {
      return {
        error: new QueueTimeoutError(
          `Call "${context.tool}" waited ${context.queueTimeoutMs} ms for a worker and was dropped without running`,
          { queueTimeoutMs: context.queueTimeoutMs, correlationId: context.correlationId },
        ),
        cancelledWhileRunning: false,
      };
    }
    if (error.grpcStatus === GRPC_UNAVAILABLE) {
      // A dropped connection usually means the worker died; its exit event can trail the socket's
      // close by a few milliseconds, so wait (bounded) to report the crash rather than the symptom.
      await Promise.race([worker.process.exited, delay(EXIT_WAIT_MS)]);
    }
    if (worker.process.exit) return { error: this.#crashError(worker, worker.process.exit, context), cancelledWhileRunning: false };
    if (error.grpcStatus === GRPC_DEADLINE_EXCEEDED && context.timeoutMs !== undefined) {
      return {
        error: new CallTimeoutError(
          `Call "${context.tool}" timed out after ${context.timeoutMs} ms; the worker was told to cancel it`,
          { timeoutMs: context.timeoutMs, correlationId: context.correlationId },
        ),
        cancelledWhileRunning: true,
      };
    }
    return {
      error: new TransportError(`Call "${context.tool}" to worker ${worker.id} failed: ${error.message}`, {
        grpcStatus: error.grpcStatus,
        correlationId: context.correlationId,
        cause: error,
      }),
      cancelledWhileRunning: false,
    };
  }

  /**
   * The cancel-grace rule: the slot stays taken until the worker reports the call gone (`Cancel`
   * answers not found); past `cancelGraceMs` the worker is killed and replaced.
   */
  #releaseAfterCancel(worker: WorkerHandle, requestId: string): void {
    const deadline = Date.now() + this.options.cancelGraceMs;
    const wait = async () => {
      while (Date.now() < deadline && worker.state !== "exited") {
        const found = await worker.transport.cancel(requestId, Math.max(1, deadline - Date.now())).catch(() => true);
        if (!found) return;
        await delay(CANCEL_POLL_MS);
      }
      if (worker.state !== "exited") this.supervisor.kill(worker, "cancel-grace");
    };
    wait().finally(() => this.release(worker));
  }
}
