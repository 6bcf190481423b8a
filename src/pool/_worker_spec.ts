/**
 * What one worker process is started with.
 *
 * @module
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import type { ResolvedPoolOptions } from "./options.ts";
import type { WorkerSpawnSpec } from "./worker_process.ts";

/** The spawn spec of worker `workerId`, with `env` as its environment additions. */
export function workerSpec(
  options: ResolvedPoolOptions,
  workerId: string,
  pythonPath: string,
  runId: string,
  env: Record<string, string>,
): WorkerSpawnSpec {
  const sink = options.workerLogs;
  return {
    workerId,
    pythonPath,
    adapter: options.adapter,
    // Each worker gets a private (0700, as mkdtemp makes it) directory of its own: it is removed
    // when that worker exits (by this host, or by the worker itself when the host is gone), so
    // no two processes ever race to remove a shared one.
    socketPath: join(mkdtempSync(join(tmpdir(), `snakepit-${options.instance}-`)), "worker.sock"),
    runId,
    instance: options.instance,
    maxConcurrency: options.concurrentTasksPerWorker,
    env,
    cwd: options.cwd,
    onLogLine: sink === "silent"
      ? () => {}
      : sink === "forward"
      ? (line) => process.stderr.write(`[${workerId}] ${line}\n`)
      : (line) => sink(line, workerId),
  };
}
