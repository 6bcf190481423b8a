// Helpers for the native (shared-memory) tests; not a test file (no `.test.` in the name).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

export const repositoryRoot = fileURLToPath(new URL("..", import.meta.url));
export const python = join(repositoryRoot, ".venv", "bin", "python");
export const peerScript = join(repositoryRoot, "python", "tests", "native_peer.py");

let instanceCounter = 0;

/** A region instance name unique to this process and call: `[A-Za-z0-9_]{1,20}`. */
export function uniqueInstance(tag: string): string {
  instanceCounter += 1;
  return `${tag.slice(0, 6)}_${process.pid}_${instanceCounter}`.slice(0, 20);
}

/** Whether the region `name` still has an entry in /dev/shm. */
export function regionExists(name: string): boolean {
  return existsSync(join("/dev/shm", name.slice(1)));
}

/** A running peer process (python/tests/native_peer.py). */
export interface Peer {
  readonly child: ChildProcess;
  /** Resolves with the next line the peer prints. */
  nextLine(timeoutMs?: number): Promise<string>;
  /** Closes the peer's stdin (peers that wait for it then finish). */
  finish(): void;
  /** Resolves when the peer exits, with its code and signal. */
  exited(timeoutMs?: number): Promise<{ code: number | null; signal: string | null }>;
  /** Everything it wrote to stderr, for failure messages. */
  stderr(): string;
}

/** Starts `native_peer.py` with `args`. */
export function startPeer(args: string[]): Peer {
  const child = spawn(python, [peerScript, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let buffered = "";
  let errors = "";
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    buffered += chunk;
    for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n")) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => (errors += chunk));
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    nextLine: (timeoutMs = 10_000) => {
      const ready = lines.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      return withTimeout(
        new Promise<string>((resolve) => waiters.push(resolve)),
        timeoutMs,
        () => `a line from peer ${args.join(" ")}; stderr: ${errors}`,
      );
    },
    finish: () => child.stdin!.end(),
    exited: (timeoutMs = 20_000) =>
      withTimeout(exit, timeoutMs, () => `peer ${args.join(" ")} to exit; stderr: ${errors}`),
    stderr: () => errors,
  };
}

/** Resolves like `promise`, or rejects after `timeoutMs` naming what was awaited. */
export async function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  what: () => string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what()}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let index = 0; index < length; index += 1) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    bytes[index] = state & 0xff;
  }
  return bytes;
}

/** Hex of bytes, as Python's bytes.hex() writes it. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
