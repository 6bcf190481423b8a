/**
 * One Python worker process: spawn, readiness, stderr tail, exit classification, stop.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname } from "node:path";
import process from "node:process";
import type { ExitClassification, WorkerExit } from "../errors/pool_errors.ts";

/** Bytes of stderr kept for crash reports. */
export const STDERR_TAIL_BYTES_MAX = 8 * 1024;
/** Longest protocol line accepted from a worker's stdout. */
const PROTOCOL_LINE_BYTES_MAX = 1024 * 1024;

/** How to start one worker. */
export interface WorkerSpawnSpec {
  workerId: string;
  pythonPath: string;
  adapter: string;
  socketPath: string;
  runId: string;
  instance: string;
  maxConcurrency: number;
  env: Record<string, string>;
  cwd: string | undefined;
  /** Called with each line the worker writes to stderr (its logs). */
  onLogLine: (line: string) => void;
  /** The fast-lane region the worker should map, and its spin budget (ns). */
  lane?: { name: string; spinNs: number };
}

/** The worker's readiness report. */
export interface ReadyReport {
  pid: number;
  address: string;
  protocolVersion: number;
  /** "ok" when the worker serves the fast lane it was given, "off" when it was given none, otherwise why not. */
  lane: string;
}

/** What the worker printed when its start-up failed. */
export interface StartupFailure {
  kind: string;
  pythonType: string;
  message: string;
  traceback: string;
}

/** Outcome of start-up, reported once. */
export type StartupOutcome =
  | { kind: "ready"; report: ReadyReport }
  | { kind: "failed"; failure: StartupFailure }
  | { kind: "spawn_error"; error: Error }
  | { kind: "exited"; exit: WorkerExit };

/** Classifies an exit from its code and signal. */
export function classifyExit(exitCode: number | null, signal: string | null): ExitClassification {
  if (signal === "SIGKILL") return "killed";
  if (signal === "SIGSEGV" || signal === "SIGBUS") return "segfault";
  if (signal === "SIGABRT") return "abort";
  if (signal) return "signal";
  // Python re-raises fatal signals as 128+n only through shells; direct exits land here.
  return exitCode === 0 ? "normal" : "python_error";
}

/** A running (or exited) worker process. */
export class WorkerProcess {
  readonly workerId: string;
  /** The unix socket the worker binds (inside a directory of its own). */
  readonly socketPath: string;
  readonly #child: ChildProcess;
  /** Called whenever the worker writes to its protocol pipe (the fast lane's doorbell). */
  onDoorbell: (() => void) | undefined;
  #stderrTail = "";
  #exit: WorkerExit | undefined;
  readonly #startup: Promise<StartupOutcome>;
  /** Resolves once, when the process has exited. */
  readonly exited: Promise<WorkerExit>;

  constructor(spec: WorkerSpawnSpec) {
    this.workerId = spec.workerId;
    this.socketPath = spec.socketPath;
    const args = [
      "-u",
      "-m",
      "snakepit_bridge.worker",
      "--socket",
      spec.socketPath,
      "--adapter",
      spec.adapter,
      "--run-id",
      spec.runId,
      "--instance",
      spec.instance,
      "--worker-id",
      spec.workerId,
      "--max-concurrency",
      String(spec.maxConcurrency),
      "--parent-pid",
      String(process.pid),
      ...(spec.lane ? ["--lane", spec.lane.name, "--lane-spin-ns", String(spec.lane.spinNs)] : []),
    ];
    this.#child = spawn(spec.pythonPath, args, {
      cwd: spec.cwd,
      env: { ...process.env, PYTHONUNBUFFERED: "1", ...spec.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let settleStartup!: (outcome: StartupOutcome) => void;
    this.#startup = new Promise((resolve) => (settleStartup = resolve));
    let resolveExited!: (exit: WorkerExit) => void;
    this.exited = new Promise((resolve) => (resolveExited = resolve));

    // The socket's directory is this worker's alone: it goes when the worker goes.
    const removeSocketDirectory = () => rmSync(dirname(spec.socketPath), { recursive: true, force: true });
    this.#child.once("error", (error) => {
      removeSocketDirectory();
      settleStartup({ kind: "spawn_error", error });
    });
    this.#child.once("exit", (exitCode, signal) => {
      removeSocketDirectory();
      // Let buffered stderr arrive before the tail is frozen into the exit record.
      setTimeout(() => {
        this.#exit = {
          exitCode,
          signal,
          classification: classifyExit(exitCode, signal),
          stderrTail: this.#stderrTail,
        };
        settleStartup({ kind: "exited", exit: this.#exit });
        resolveExited(this.#exit);
      }, 20);
    });
    const stdout = this.#child.stdout!;
    // After readiness the protocol pipe carries bare newlines: the fast lane's doorbell.
    stdout.on("data", () => this.onDoorbell?.());
    readLines(stdout, (line) => {
      if (line === "") return;
      const message = parseProtocolLine(line);
      if (message?.event === "ready") {
        settleStartup({
          kind: "ready",
          report: {
            pid: Number(message.pid),
            address: String(message.address),
            protocolVersion: Number(message.protocol_version),
            lane: String(message.lane ?? "off"),
          },
        });
      } else if (message?.event === "startup_error") {
        settleStartup({
          kind: "failed",
          failure: {
            kind: String(message.kind ?? "adapter"),
            pythonType: String(message.python_type ?? "Exception"),
            message: String(message.message ?? ""),
            traceback: String(message.traceback ?? ""),
          },
        });
      } else {
        // A tool that prints to stdout: treat it as a log line rather than lose it.
        spec.onLogLine(line);
      }
    });
    readLines(this.#child.stderr!, (line) => {
      this.#stderrTail = (this.#stderrTail + line + "\n").slice(-STDERR_TAIL_BYTES_MAX);
      spec.onLogLine(line);
    });
  }

  /** The process id (undefined if the spawn failed). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** The exit record, once the process has exited. */
  get exit(): WorkerExit | undefined {
    return this.#exit;
  }

  /** The last bytes the worker wrote to stderr. */
  get stderrTail(): string {
    return this.#stderrTail;
  }

  /** Resolves with how start-up went: ready, a reported failure, a spawn error or an exit. */
  startup(): Promise<StartupOutcome> {
    return this.#startup;
  }

  /** Sends a signal to the worker's whole process group (it is the group leader). */
  signalGroup(signal: NodeJS.Signals): void {
    const pid = this.#child.pid;
    if (pid === undefined || this.#exit) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // The group may not exist yet (setsid not reached) or already be gone: signal the process.
      try {
        this.#child.kill(signal);
      } catch {
        // Already exited.
      }
    }
  }

  /**
   * Stops the worker: SIGTERM, then SIGKILL to the whole process group after `graceMs`.
   * Resolves when the process has exited.
   */
  async stop(graceMs: number): Promise<WorkerExit> {
    if (this.#exit) return this.#exit;
    if (this.#child.pid === undefined) return this.exited;
    this.signalGroup("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.signalGroup("SIGKILL");
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    const exit = await this.exited;
    // Children the tool started stay in the group after the leader exits: take them too.
    this.#killGroupRemnants();
    return exit;
  }

  /** Kills the group at once, without waiting (for process exit hooks). */
  killNow(): void {
    this.signalGroup("SIGKILL");
  }

  #killGroupRemnants(): void {
    const pid = this.#child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // No process left in the group: the normal case.
    }
  }
}

function parseProtocolLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value = JSON.parse(line);
    return value && typeof value === "object" ? value : undefined;
  } catch {
    return undefined;
  }
}

function readLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      onLine(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf("\n");
    }
    if (buffered.length > PROTOCOL_LINE_BYTES_MAX) {
      onLine(buffered);
      buffered = "";
    }
  });
  stream.on("end", () => {
    if (buffered) onLine(buffered);
  });
}
