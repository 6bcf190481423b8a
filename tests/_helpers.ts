// Shared helpers for the process-level tests (not a test file: no `.test.` in the name).
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import process from "node:process";
import type { PoolOptions } from "../mod.ts";

/** The project venv's interpreter. */
export const PYTHON = resolve(".venv/bin/python");
/** Registry files of test pools stay inside the project (.snakepit/ is ignored by git). */
export const TEST_STATE_DIRECTORY = resolve(".snakepit/test-state");
/** Test-only adapters (importable via PYTHONPATH). */
export const FIXTURES = resolve("tests/fixtures");

export const ECHO = "snakepit_bridge.examples.echo:EchoAdapter";
export const NUMERIC = "snakepit_bridge.examples.numeric:NumericAdapter";

/** Pool options for tests: quiet workers, the project venv, fixtures importable. */
export function testPoolOptions(overrides: Partial<PoolOptions> & { adapter?: string } = {}): PoolOptions {
  return {
    adapter: ECHO,
    size: 1,
    pythonPath: PYTHON,
    workerLogs: "silent",
    stateDirectory: TEST_STATE_DIRECTORY,
    ...overrides,
    env: { PYTHONPATH: FIXTURES, ...overrides.env },
  };
}

/** Whether a process exists (and is not a zombie). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const state = execFileSync("ps", ["-o", "stat=", "-p", String(pid)], { encoding: "utf8" }).trim();
    return state !== "" && !state.startsWith("Z");
  } catch {
    return false;
  }
}

/** Awaits `condition` (polled every 20 ms) up to `timeoutMs`; throws with `what` otherwise. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Pids of worker processes whose command line carries `marker`. */
export function workerPidsWithMarker(marker: string): number[] {
  const output = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return output.split("\n").filter((line) => line.includes("snakepit_bridge.worker") && line.includes(marker))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}
