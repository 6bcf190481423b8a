import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Pool } from "../mod.ts";
import { processStartTime } from "../src/pool/registry.ts";
import { isAlive, PYTHON, testPoolOptions, waitFor } from "./_helpers.ts";
import { regionExists, startPeer, uniqueInstance } from "./_native_helpers.ts";

const isDeno = "Deno" in globalThis;

/** Starts tests/fixtures/host_with_pool.ts under this runtime; resolves with its pids. */
async function startHost(stateDirectory: string, instance: string): Promise<{ host: ChildProcess; workers: number[]; children: number[] }> {
  const args = isDeno ? ["run", "-A", "--quiet"] : ["run"];
  const host = spawn(process.execPath, [...args, "tests/fixtures/host_with_pool.ts", stateDirectory, instance], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let buffered = "";
    host.stdout!.on("data", (chunk) => {
      buffered += chunk;
      if (buffered.includes("\n")) resolve(buffered.split("\n")[0]!);
    });
    host.once("exit", (code) => reject(new Error(`host exited early with ${code}`)));
  });
  return { host, ...JSON.parse(line) };
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

describe("no orphans, ever", () => {
  test("a SIGKILLed host leaves no worker and no worker's child after 2 s", async () => {
    const state = mkdtempSync(join(tmpdir(), "sp-hygiene-"));
    try {
      const { host, workers, children } = await startHost(state, "hygiene-kill");
      assert.equal(workers.length, 2);
      assert.ok([...workers, ...children].every(isAlive));
      const [record] = readdirSync(join(state, "hygiene-kill")).filter((name) => name.endsWith(".json"));
      const run = JSON.parse(readFileSync(join(state, "hygiene-kill", record!), "utf8"));
      const socketDirectories: string[] = run.workers.map((worker: { socketDirectory: string }) => worker.socketDirectory);
      assert.equal(socketDirectories.length, 2);
      assert.ok(socketDirectories.every((directory) => existsSync(directory)));
      host.kill("SIGKILL");
      await waitFor(() => !isAlive(host.pid!), 2_000, "the host to die");
      await waitFor(() => [...workers, ...children].every((pid) => !isAlive(pid)), 2_000, "workers and their children to die");
      // Dying workers remove their socket directories on a best-effort basis; the guarantee is the
      // registry: the next host of the instance reaps the dead run, socket directories included.
      const next = await Pool.start(testPoolOptions({ stateDirectory: state, instance: "hygiene-kill" }));
      await next.close();
      assert.ok(socketDirectories.every((directory) => !existsSync(directory)), "the dead run's socket directories are gone");
      assert.ok(!existsSync(join(state, "hygiene-kill", record!)), "the dead run's registry file is gone");
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  test("SIGTERM to the host closes its pools before it exits (code 143)", async () => {
    const state = mkdtempSync(join(tmpdir(), "sp-hygiene-"));
    try {
      const { host, workers, children } = await startHost(state, "hygiene-term");
      host.kill("SIGTERM");
      await waitFor(() => !isAlive(host.pid!), 10_000, "the host to exit");
      assert.equal(readFileSync(join(state, "host-exit-code"), "utf8"), "143", "the host exited through its handler");
      assert.ok([...workers, ...children].every((pid) => !isAlive(pid)), "closed before the host exited");
      assert.ok(!existsSync(join(state, "hygiene-term")) || spawnSync("ls", [join(state, "hygiene-term")]).stdout.length === 0,
        "the registry file was removed by close()");
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });
});

describe("the registry reaps workers of dead runs of the same instance", () => {
  test("only verified workers of dead hosts are killed; reused pids and live runs are spared", async () => {
    const state = mkdtempSync(join(tmpdir(), "sp-registry-"));
    const instance = "reap";
    const dressed = (runId: string, instanceName: string) =>
      spawn(PYTHON, ["-c", "import time; time.sleep(60)", "snakepit_bridge.worker", "--run-id", runId, "--instance", instanceName], {
        stdio: "ignore",
      });
    const orphan = dressed("dead-run", instance); // a worker whose host died
    const reused = spawn("sleep", ["60"], { stdio: "ignore" }); // a recorded pid now used by someone else
    const liveRunWorker = dressed("live-run", instance); // a worker of a live host of this instance
    const otherInstance = dressed("dead-other", "elsewhere"); // a dead run of another instance
    const deadHost = spawnSync("true").pid;
    try {
      await waitFor(() => [orphan, reused, liveRunWorker, otherInstance].every((child) => processStartTime(child.pid!) !== undefined), 2_000, "decoys");
      const record = (directory: string, runId: string, hostPid: number, workers: ChildProcess[]) => {
        mkdirSync(join(state, directory), { recursive: true });
        writeFileSync(join(state, directory, `${runId}.json`), JSON.stringify({
          runId,
          instance: directory,
          pool: "p",
          hostPid,
          hostStartTime: processStartTime(hostPid),
          startedAt: new Date().toISOString(),
          workers: workers.map((child) => ({ workerId: "w", pid: child.pid, startTime: processStartTime(child.pid!) })),
        }));
      };
      record(instance, "dead-run", deadHost, [orphan, reused]);
      record(instance, "live-run", process.pid, [liveRunWorker]);
      record("elsewhere", "dead-other", deadHost, [otherInstance]);
      const pool = await Pool.start(testPoolOptions({ stateDirectory: state, instance }));
      await pool.close();
      await waitFor(() => !isAlive(orphan.pid!), 2_000, "the dead run's worker to be reaped");
      assert.ok(isAlive(reused.pid!), "a pid whose command line is not the worker's is never killed");
      assert.ok(isAlive(liveRunWorker.pid!), "workers of a live host are never touched");
      assert.ok(isAlive(otherInstance.pid!), "another instance's runs are never touched");
      assert.ok(!existsSync(join(state, instance, "dead-run.json")), "the dead run's file is removed");
      assert.ok(existsSync(join(state, instance, "live-run.json")));
    } finally {
      for (const child of [orphan, reused, liveRunWorker, otherInstance]) child.kill("SIGKILL");
      await Promise.all([orphan, reused, liveRunWorker, otherInstance].map(exited));
      rmSync(state, { recursive: true, force: true });
    }
  });
});

describe("the pool reaps shared-memory regions of dead processes", () => {
  test("a region left by a SIGKILLed holder is unlinked when a pool starts; a live holder's is spared", async () => {
    const doomed = startPeer(["create", uniqueInstance("pooldead"), "4096", "aa", "forever"]);
    const living = startPeer(["create", uniqueInstance("poollive"), "4096", "bb"]);
    try {
      const doomedName = (await doomed.nextLine()).trim();
      const livingName = (await living.nextLine()).trim();
      doomed.child.kill("SIGKILL");
      await doomed.exited();
      assert.ok(regionExists(doomedName), "a SIGKILLed holder cannot release its region");
      const reaped: number[] = [];
      const pool = await Pool.start(testPoolOptions({ on: { "pool:regions-reaped": (event) => reaped.push(event.reaped) } }));
      await pool.close();
      assert.ok(!regionExists(doomedName), "the dead holder's region was reaped at start-up");
      assert.ok(regionExists(livingName), "a live holder's region is never touched");
      assert.ok(reaped[0]! >= 1);
    } finally {
      doomed.child.kill("SIGKILL");
      living.finish();
      await living.exited();
    }
  });
});
