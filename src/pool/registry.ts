/**
 * The worker registry: one file per pool run under `<stateDirectory>/<instance>/`, recording the
 * host and each worker (pid, start time). A new host reaps workers of dead runs of its instance,
 * after checking each one's live command line, so a reused pid is never killed.
 *
 * @module
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, join } from "node:path";
import process from "node:process";

/** Registry files read per reap; a directory with more is reaped over several starts. */
const RUN_FILES_MAX = 1024;

/** One worker as recorded. */
export interface RegistryWorker {
  workerId: string;
  pid: number;
  /** Kernel start time (`/proc/<pid>/stat` field 22), to tell a reused pid apart. */
  startTime: number | undefined;
  /** The worker's private socket directory, removed by the reaper once the run is dead. */
  socketDirectory?: string;
}

/** One pool run as recorded. */
export interface RegistryRun {
  runId: string;
  instance: string;
  pool: string;
  hostPid: number;
  hostStartTime: number | undefined;
  startedAt: string;
  workers: RegistryWorker[];
}

/** What a reap did. */
export interface ReapReport {
  /** Pids of workers of dead runs that were killed. */
  killed: number[];
  /** Pids recorded but skipped: gone already, or their command line is not that worker's. */
  skipped: number[];
  /** Run files removed. */
  runsRemoved: number;
}

/** The default state directory: `$SNAKEPIT_STATE_DIR`, `$XDG_STATE_HOME/snakepit`, `~/.local/state/snakepit`. */
export function defaultStateDirectory(): string {
  return process.env.SNAKEPIT_STATE_DIR ??
    join(process.env.XDG_STATE_HOME ?? join(homedir(), ".local", "state"), "snakepit");
}

/**
 * The kernel start time of a process, or undefined when it does not exist or is dead: a zombie
 * (exited, not yet reaped by its parent) still has a /proc entry but is no longer a live host.
 */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start at field 3 (the state).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

function isSameProcess(pid: number, startTime: number | undefined): boolean {
  const current = processStartTime(pid);
  return current !== undefined && (startTime === undefined || current === startTime);
}

function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
}

/** Whether `pid`'s live command line is the worker of `run` (module, run id and instance). */
export function isWorkerOf(pid: number, run: Pick<RegistryRun, "runId" | "instance">): boolean {
  const argv = commandLine(pid);
  const valueOf = (flag: string) => argv[argv.indexOf(flag) + 1];
  return argv.includes("snakepit_bridge.worker") && argv.includes("--run-id") && valueOf("--run-id") === run.runId &&
    valueOf("--instance") === run.instance;
}

/** Records one pool run; rewritten atomically on every worker change. */
export class RegistryFile {
  readonly path: string;
  readonly #run: RegistryRun;

  constructor(stateDirectory: string, run: Omit<RegistryRun, "workers" | "hostStartTime">) {
    const directory = join(stateDirectory, run.instance);
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    this.path = join(directory, `${run.runId}.json`);
    this.#run = { ...run, hostStartTime: processStartTime(run.hostPid), workers: [] };
    this.#write();
  }

  add(workerId: string, pid: number, socketDirectory?: string): void {
    this.#run.workers.push({ workerId, pid, startTime: processStartTime(pid), socketDirectory });
    this.#write();
  }

  remove(pid: number | undefined): void {
    this.#run.workers = this.#run.workers.filter((worker) => worker.pid !== pid);
    this.#write();
  }

  /** Deletes the file (the pool closed cleanly). */
  delete(): void {
    try {
      rmSync(this.path, { force: true });
    } catch {
      // Best effort, as for writes.
    }
  }

  /**
   * Best effort: the registry only helps a later host clean up, so a state directory removed or
   * made read-only under a running pool must not break the pool.
   */
  #write(): void {
    const temporary = `${this.path}.tmp`;
    try {
      writeFileSync(temporary, JSON.stringify(this.#run), { mode: 0o600 });
      renameSync(temporary, this.path);
    } catch {
      // Nothing to do: see above.
    }
  }
}

/**
 * Kills the workers of runs of `instance` whose host is dead, after checking each live command
 * line; removes their files. Runs whose host is alive (this instance in another process, or this
 * process) are never touched.
 */
export function reapDeadRuns(stateDirectory: string, instance: string): ReapReport {
  const report: ReapReport = { killed: [], skipped: [], runsRemoved: 0 };
  const directory = join(stateDirectory, instance);
  let names: string[];
  try {
    names = readdirSync(directory).filter((name) => name.endsWith(".json")).slice(0, RUN_FILES_MAX);
  } catch {
    return report;
  }
  for (const name of names) {
    const path = join(directory, name);
    let run: RegistryRun;
    try {
      run = JSON.parse(readFileSync(path, "utf8"));
    } catch {
      // A torn or foreign file: it records nothing we could safely act on.
      rmSync(path, { force: true });
      continue;
    }
    if (run.instance !== instance || isSameProcess(run.hostPid, run.hostStartTime)) continue;
    for (const worker of run.workers ?? []) {
      if (isSameProcess(worker.pid, worker.startTime) && isWorkerOf(worker.pid, run)) {
        killGroup(worker.pid);
        report.killed.push(worker.pid);
      } else {
        report.skipped.push(worker.pid);
      }
      // Only a directory named as ours for this instance, so a corrupt record cannot aim rm elsewhere.
      const sockets = worker.socketDirectory;
      if (sockets && basename(sockets).startsWith(`snakepit-${instance}-`)) rmSync(sockets, { recursive: true, force: true });
    }
    rmSync(path, { force: true });
    report.runsRemoved += 1;
  }
  return report;
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}
