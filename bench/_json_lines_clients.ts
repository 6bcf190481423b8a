// The subprocess-bridge baselines of bench/fast_lane.ts: JSON lines over pipes to a minimal
// Python loop (bench/_json_lines_loop.py), driven directly with node:child_process and through
// python-shell 5 in JSON mode.
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import { PythonShell } from "python-shell";

const python = resolve(".venv/bin/python");
const loopScript = resolve("bench/_json_lines_loop.py");

/** One call: a tool name and its arguments, resolving with the result. */
export type Call = (tool: string, args: Record<string, unknown>) => Promise<unknown>;
interface Reply {
  id: number;
  result?: unknown;
  error?: string;
}

/** Replies of a JSON-lines loop, awaited by id. */
class PendingReplies {
  #nextId = 1;
  readonly #waiting = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();

  add(): [number, Promise<unknown>] {
    const id = this.#nextId++;
    return [id, new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }))];
  }

  settle(reply: Reply): void {
    const waiting = this.#waiting.get(reply.id);
    if (!waiting) throw new Error(`reply to unknown call ${reply.id}`);
    this.#waiting.delete(reply.id);
    if (reply.error === undefined) waiting.resolve(reply.result);
    else waiting.reject(new Error(reply.error));
  }

  failAll(error: Error): void {
    for (const waiting of this.#waiting.values()) waiting.reject(error);
    this.#waiting.clear();
  }
}

/** The baseline: the Python loop on pipes, one JSON object a line each way. */
export function startJsonLinesLoop(): { call: Call; stop: () => void } {
  const child = spawn(python, [loopScript], { stdio: ["pipe", "pipe", "inherit"] });
  const replies = new PendingReplies();
  let partial: Buffer[] = [];
  child.stdout!.on("data", (chunk: Buffer) => {
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      partial.push(chunk.subarray(start, newline));
      replies.settle(JSON.parse(Buffer.concat(partial).toString("utf8")));
      partial = [];
      start = newline + 1;
    }
    if (start < chunk.length) partial.push(chunk.subarray(start));
  });
  let exited: Error | undefined;
  child.once(
    "exit",
    (code, signal) =>
      replies.failAll(exited = new Error(`the JSON-lines loop exited (${code ?? signal})`)),
  );
  const call: Call = (tool, args) => {
    if (exited) return Promise.reject(exited);
    const [id, reply] = replies.add();
    child.stdin!.write(JSON.stringify({ id, tool, args }) + "\n");
    return reply;
  };
  return { call, stop: () => child.kill("SIGKILL") };
}

/** python-shell 5 in JSON mode driving the same loop; throws where it cannot run. */
export async function startPythonShell(): Promise<{ call: Call; stop: () => void }> {
  const shell = new PythonShell(loopScript, { mode: "json", pythonPath: python });
  const replies = new PendingReplies();
  shell.on("message", (reply: Reply) => replies.settle(reply));
  shell.on("error", (error: Error) => replies.failAll(error));
  shell.on("close", () => replies.failAll(new Error("python-shell closed")));
  const call: Call = (tool, args) => {
    const [id, reply] = replies.add();
    shell.send({ id, tool, args });
    return reply;
  };
  const stop = () => void shell.kill("SIGKILL");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise((_, reject) =>
    timer = setTimeout(() => reject(new Error("no reply within 10 s")), 10_000)
  );
  try {
    await Promise.race([call("noop", {}), timeout]);
  } catch (error) {
    stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return { call, stop };
}

/** SIGKILLs this process's children running the loop (python-shell on Bun throws after spawning one). */
export function killLoopChildren(): void {
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parentPid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (
        parentPid === process.pid &&
        readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(loopScript)
      ) {
        process.kill(Number(entry), "SIGKILL");
      }
    } catch {
      // The process ended while it was being looked at.
    }
  }
}
