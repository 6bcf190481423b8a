/**
 * A started worker as the pool sees it: the process, its transport, its load and its tools.
 *
 * @module
 */
import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { GrpcTransport } from "../bridge/grpc_transport.ts";
import type { WorkerDescription, WorkerTransport } from "../bridge/transport.ts";
import { ConfigurationError, type WorkerExit, WorkerStartError } from "../errors/pool_errors.ts";
import { type WorkerSpawnSpec, WorkerProcess } from "./worker_process.ts";
import type { NativeLibrary } from "../../ffi/native_library.ts";
import { PendingLane } from "./_lane_setup.ts";

/** How a worker should be reached: over the fast lane when possible, or gRPC only. */
export interface LaneRequest {
  library: NativeLibrary;
  /** "auto" falls back to gRPC (warning once) when the lane cannot be used; "fast-lane" refuses. */
  mode: "auto" | "fast-lane";
  spinUs: number;
  /** Calls that may wait in the ring of a worker that runs one at a time. */
  pipelineDepth: number;
  /** Called when the lane breaks its protocol: the worker must be replaced. */
  onBroken: (handle: WorkerHandle, error: Error) => void;
}

let laneFallbackWarned = false;

/** The protocol version this host speaks. */
export const PROTOCOL_VERSION = 1;
/** Delay between connection attempts while a fresh worker's socket comes up. */
const CONNECT_RETRY_MS = 20;

const liveProcesses = new Set<WorkerProcess>();
let exitHookInstalled = false;

/** Kill every worker if the host exits without closing its pools (no orphans, ever). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  globalThis.process?.on?.("exit", () => {
    for (const worker of liveProcesses) {
      worker.killNow();
      // The exit event that would remove the worker's socket directory never comes now.
      rmSync(dirname(worker.socketPath), { recursive: true, force: true });
    }
  });
}

/** A worker that finished start-up. */
export class WorkerHandle {
  /** Calls dispatched to this worker and not yet settled. */
  inFlight = 0;
  /** Calls this worker has served. */
  callsServed = 0;
  /**
   * `ready` takes calls; `draining` finishes its calls before being replaced (recycling);
   * `stopping` is being stopped or killed by the pool; `exited` is gone.
   */
  state: "ready" | "draining" | "stopping" | "exited" = "ready";
  /** Set when the pool killed the worker because it was hung: its exit counts as a crash. */
  killedAsHung = false;
  /** Resident memory as last reported by a heartbeat. */
  rssBytes = 0;
  /** Consecutive heartbeats missed. */
  heartbeatMisses = 0;
  /** Whether a heartbeat ping is outstanding (never two at once). */
  heartbeatPending = false;
  readonly startedAt = Date.now();
  readonly #exitListeners = new Set<(exit: WorkerExit) => void>();

  private constructor(
    readonly process: WorkerProcess,
    readonly transport: WorkerTransport,
    readonly description: WorkerDescription,
    /** Calls the pool may dispatch to this worker at once (running and pipelined). */
    readonly capacity: number,
    /** Calls it runs at once; past this a call waits in its fast-lane ring. */
    readonly concurrency: number,
  ) {
    process.exited.then((exit) => {
      this.state = "exited";
      liveProcesses.delete(process);
      transport.close();
      for (const listener of [...this.#exitListeners]) listener(exit);
    });
  }

  get id(): string {
    return this.process.workerId;
  }

  /** Registers a one-shot exit listener; returns the function that removes it. */
  onExit(listener: (exit: WorkerExit) => void): () => void {
    if (this.process.exit) {
      listener(this.process.exit);
      return () => {};
    }
    this.#exitListeners.add(listener);
    return () => this.#exitListeners.delete(listener);
  }

  /**
   * Spawns a worker and waits until it is ready, connected and has described itself.
   *
   * @throws ConfigurationError when the interpreter cannot be run
   * @throws WorkerStartError when the worker fails, exits or times out during start-up
   */
  static async start(
    spec: WorkerSpawnSpec,
    startTimeoutMs: number,
    capacity: number,
    signal?: AbortSignal,
    onSpawned?: (pid: number | undefined) => void,
    laneRequest?: LaneRequest,
  ): Promise<WorkerHandle> {
    installExitHook();
    const deadline = Date.now() + startTimeoutMs;
    let lane: PendingLane | undefined;
    if (laneRequest) {
      try {
        lane = new PendingLane(laneRequest.library, spec.instance);
      } catch (error) {
        if (laneRequest.mode === "fast-lane") {
          throw new ConfigurationError(
            `Cannot start worker ${spec.workerId}: its fast lane could not be created (${(error as Error).message})`,
            { cause: error, suggestion: 'free space in /dev/shm, or set options.transport to "auto" or "grpc"' },
          );
        }
        warnLaneFallback(`the lane region could not be created (${(error as Error).message})`);
      }
    }
    if (lane) spec = { ...spec, lane: { name: lane.name, spinNs: Math.round(laneRequest!.spinUs * 1000) } };
    const worker = new WorkerProcess(spec);
    liveProcesses.add(worker);
    worker.exited.then(() => liveProcesses.delete(worker));
    onSpawned?.(worker.pid);
    let transport: WorkerTransport | undefined;
    const aborted = new Promise<"aborted">((resolve) => {
      if (signal?.aborted) resolve("aborted");
      signal?.addEventListener("abort", () => resolve("aborted"), { once: true });
    });
    try {
      const outcome = await Promise.race([withDeadline(worker.startup(), deadline), aborted]);
      if (outcome === "aborted") throw signal!.reason;
      if (outcome === "timeout") {
        throw new WorkerStartError(
          `Cannot start worker ${spec.workerId}: it did not report ready within ${startTimeoutMs} ms`,
          { workerId: spec.workerId, suggestion: "raise options.startTimeoutMs if the adapter's imports are slow" },
        );
      }
      if (outcome.kind === "spawn_error") {
        throw new ConfigurationError(
          `Cannot start pool: the Python interpreter "${spec.pythonPath}" could not be run (${outcome.error.message})`,
          { cause: outcome.error, suggestion: "set options.pythonPath to an existing interpreter, or run `make setup`" },
        );
      }
      if (outcome.kind === "failed") {
        const { failure } = outcome;
        throw new WorkerStartError(
          `Cannot start worker ${spec.workerId}: adapter "${spec.adapter}" failed to load: ` +
            `${failure.pythonType}: ${failure.message}`,
          {
            workerId: spec.workerId,
            pythonTraceback: failure.traceback,
            suggestion: "check the adapter's module path and that its imports are installed in that interpreter",
          },
        );
      }
      if (outcome.kind === "exited") {
        const { exit } = outcome;
        const tail = exit.stderrTail.trim().split("\n").slice(-5).join("\n");
        throw new WorkerStartError(
          `Cannot start worker ${spec.workerId}: the process exited during start-up ` +
            `(exit code ${exit.exitCode}, signal ${exit.signal})` + (tail ? `; stderr:\n${tail}` : ""),
          {
            workerId: spec.workerId,
            exit,
            suggestion: /No module named '?snakepit_bridge/.test(tail)
              ? `install the Python package into ${spec.pythonPath}: pip install -e python (or snakepit-bridge)`
              : undefined,
          },
        );
      }
      if (outcome.report.protocolVersion !== PROTOCOL_VERSION) {
        throw new WorkerStartError(
          `Cannot start worker ${spec.workerId}: it speaks protocol ${outcome.report.protocolVersion}, ` +
            `this host speaks ${PROTOCOL_VERSION}`,
          { workerId: spec.workerId, suggestion: "install matching versions of snakepit and snakepit-bridge" },
        );
      }
      const control = new GrpcTransport(outcome.report.address);
      transport = control;
      const description = await connect(control, deadline, spec.workerId);
      if (signal?.aborted) throw signal.reason;
      if (lane && outcome.report.lane === "ok") {
        let handle: WorkerHandle | undefined;
        const fast = lane.attach(control, laneRequest!.spinUs, (error) => {
          if (handle) laneRequest!.onBroken(handle, error);
          else worker.killNow();
        });
        transport = fast;
        worker.onDoorbell = () => fast.doorbell();
        // A worker that runs one call at a time may hold more in its ring (pipelining): they
        // start as soon as the one before ends, with no round trip to the host in between.
        const pipelined = description.capabilities.maxConcurrency === 1 ? laneRequest!.pipelineDepth : 0;
        handle = new WorkerHandle(worker, fast, description, capacity + pipelined, capacity);
        return handle;
      }
      if (lane) {
        if (laneRequest!.mode === "fast-lane") {
          throw new WorkerStartError(
            `Cannot start worker ${spec.workerId}: it cannot serve the fast lane (${outcome.report.lane})`,
            { workerId: spec.workerId, suggestion: 'install matching versions of snakepit and snakepit-bridge, or set options.transport to "auto" or "grpc"' },
          );
        }
        warnLaneFallback(`worker ${spec.workerId} cannot serve it (${outcome.report.lane})`);
        lane.discard();
      }
      return new WorkerHandle(worker, control, description, capacity, capacity);
    } catch (error) {
      transport?.close();
      lane?.discard();
      await worker.stop(200);
      throw error;
    }
  }
}

function warnLaneFallback(reason: string): void {
  if (laneFallbackWarned) return;
  laneFallbackWarned = true;
  globalThis.process?.emitWarning?.(
    `Snakepit: using gRPC instead of the fast lane: ${reason}. Calls still work, only slower; ` +
      'set options.transport to "grpc" to choose it explicitly.',
    { code: "SNAKEPIT_FAST_LANE_UNAVAILABLE" },
  );
}

async function connect(transport: GrpcTransport, deadline: number, workerId: string): Promise<WorkerDescription> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      await transport.ping(Math.max(1, Math.min(1000, deadline - Date.now())));
      return await transport.describe(Math.max(1, deadline - Date.now()));
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_MS));
    }
  }
  throw new WorkerStartError(`Cannot start worker ${workerId}: it reported ready but did not answer a ping`, {
    workerId,
    cause: lastError,
  });
}

async function withDeadline<T>(promise: Promise<T>, deadline: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
