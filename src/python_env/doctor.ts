/**
 * The doctor: checks, one line each, that this machine can run workers, and says how to fix
 * what it cannot. `bun run doctor` / `deno task doctor` run it.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import process from "node:process";
import { Pool } from "../pool/pool.ts";
import { detect, identity } from "../hardware/detect.ts";
import { selectDevice } from "../hardware/select.ts";
import { torchView } from "../hardware/torch_view.ts";
import { resolvePython } from "./resolve.ts";
import { validatePython } from "./validate.ts";

/** One line of the doctor's report. */
export interface DoctorCheck {
  name: string;
  status: "pass" | "warn" | "fail";
  detail: string;
  /** The command or step that fixes a failure. */
  fix?: string;
}

/** Options of `runDoctor`. */
export interface DoctorOptions {
  /** The interpreter to check. Default: `resolvePython()`'s choice. */
  pythonPath?: string;
  /** Where progress lines go. Default: stdout. */
  write?: (text: string) => void;
  /** /dev/shm below this fails. Default 64 MiB. */
  sharedMemoryBytesMin?: number;
  /** /dev/shm below this warns. Default 1 GiB. */
  sharedMemoryBytesWarn?: number;
}

const MIB = 1024 * 1024;
const SYMBOLS = { pass: "✓", warn: "!", fail: "✗" } as const;

/**
 * Runs every check in turn, printing a line per check as it finishes; resolves the results.
 * `ok` is false when any check failed.
 *
 * @example
 * ```ts
 * const { ok } = await runDoctor();
 * process.exitCode = ok ? 0 : 1;
 * ```
 */
export async function runDoctor(options: DoctorOptions = {}): Promise<{ ok: boolean; checks: DoctorCheck[] }> {
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const checks: DoctorCheck[] = [];
  const steps: Array<[string, () => Promise<DoctorCheck | DoctorCheck[]>]> = [
    ["Python interpreter and modules", () => checkPython(options.pythonPath)],
    ["native library", () => Promise.resolve(checkNativeLibrary())],
    ["/dev/shm", () => checkSharedMemory(options.sharedMemoryBytesMin ?? 64 * MIB, options.sharedMemoryBytesWarn ?? 1024 * MIB)],
    ["hardware", () => checkHardware(options.pythonPath)],
    ["worker round trip", () => checkWorker(checks, options.pythonPath)],
  ];
  for (const [index, [name, run]] of steps.entries()) {
    write(`[${index + 1}/${steps.length}] ${name} ...\n`);
    let results: DoctorCheck[];
    try {
      const result = await run();
      results = Array.isArray(result) ? result : [result];
    } catch (error) {
      results = [{ name, status: "fail", detail: `the check itself failed: ${error instanceof Error ? error.message : String(error)}` }];
    }
    for (const check of results) {
      checks.push(check);
      write(`  ${SYMBOLS[check.status]} ${check.status.toUpperCase()} ${check.name}: ${check.detail}\n`);
      if (check.fix) write(`      fix: ${check.fix}\n`);
    }
  }
  const failed = checks.filter((check) => check.status === "fail");
  write(failed.length === 0 ? "\nAll checks passed.\n" : `\n${failed.length} check(s) failed.\n`);
  return { ok: failed.length === 0, checks };
}

async function checkPython(pythonPath: string | undefined): Promise<DoctorCheck[]> {
  let resolved;
  try {
    resolved = resolvePython(pythonPath);
  } catch (error) {
    const suggestion = (error as { suggestion?: string }).suggestion;
    return [{ name: "interpreter", status: "fail", detail: (error as Error).message, fix: suggestion ?? "make setup" }];
  }
  const verdict = await validatePython(resolved.path);
  if (!verdict.ok) {
    return [{ name: "interpreter", status: "fail", detail: `${verdict.diagnosis} (found via ${resolved.source})`, fix: verdict.fix }];
  }
  const arrow = await validatePython(resolved.path, { requiredModules: [], arrow: true });
  return [
    { name: "interpreter", status: "pass", detail: `Python ${verdict.version} at ${resolved.path} (found via ${resolved.source})` },
    { name: "modules", status: "pass", detail: "grpc, numpy, msgpack and snakepit_bridge import" },
    arrow.ok
      ? { name: "arrow", status: "pass", detail: "pyarrow is installed (Arrow tables)" }
      : { name: "arrow", status: "warn", detail: "pyarrow is not installed: Arrow tables are unavailable", fix: `${resolved.path} -m pip install pyarrow` },
  ];
}

function checkNativeLibrary(): DoctorCheck {
  const path = process.env.SNAKEPIT_NATIVE_LIB ?? resolvePath("zig-out/lib/libsnakepit.so");
  if (existsSync(path)) return { name: "native library", status: "pass", detail: path };
  return {
    name: "native library",
    status: "warn",
    detail: `${path} is missing: shared memory is off and large values are copied`,
    fix: "make setup (builds it with Zig), or set $SNAKEPIT_NATIVE_LIB",
  };
}

async function checkSharedMemory(minimumBytes: number, warnBytes: number): Promise<DoctorCheck> {
  const output = await new Promise<string | undefined>((resolve) => {
    execFile("df", ["-Pk", "/dev/shm"], { encoding: "utf8", timeout: 5000 }, (error, stdout) => resolve(error ? undefined : stdout));
  });
  const fields = output?.trim().split("\n").at(-1)?.split(/\s+/);
  const availableBytes = Number(fields?.[3]) * 1024;
  if (!output || !Number.isFinite(availableBytes)) {
    return { name: "/dev/shm", status: "warn", detail: "cannot read /dev/shm's size (not Linux?); shared memory may be unavailable" };
  }
  const detail = `${Math.round(availableBytes / MIB)} MiB free of ${Math.round(Number(fields?.[1]) * 1024 / MIB)} MiB`;
  const fix = "docker run --shm-size=2g ... (or mount -o remount,size=2G /dev/shm)";
  if (availableBytes < minimumBytes) return { name: "/dev/shm", status: "fail", detail: `${detail}, under ${minimumBytes / MIB} MiB`, fix };
  if (availableBytes < warnBytes) return { name: "/dev/shm", status: "warn", detail: `${detail}, under ${warnBytes / MIB} MiB`, fix };
  return { name: "/dev/shm", status: "pass", detail };
}

async function checkHardware(pythonPath: string | undefined): Promise<DoctorCheck> {
  const hardware = await detect();
  const choice = selectDevice(hardware);
  const gpus = hardware.cuda.length > 0 ? `, ${hardware.cuda.length} CUDA device(s)` : ", no CUDA devices";
  const detail = `${hardware.cpu.model}, ${hardware.cpu.cores} cores / ${hardware.cpu.threads} threads${gpus}; device ${choice.device}; identity ${identity(hardware).hash}`;
  const torch = await torchView(pythonPath).catch(() => undefined);
  if (!torch?.installed) return { name: "hardware", status: "pass", detail: `${detail}; torch not installed` };
  const seen = `; torch ${torch.version} sees ${torch.devices.length} CUDA device(s)`;
  if (hardware.cuda.length > 0 && !torch.cudaAvailable) {
    return {
      name: "hardware",
      status: "warn",
      detail: `${detail}${seen}: nvidia-smi lists GPUs but torch cannot use them`,
      fix: torch.builtWithCuda === null ? "install a CUDA build of torch (https://pytorch.org/get-started/locally/)" : "check CUDA_VISIBLE_DEVICES and the driver version",
    };
  }
  return { name: "hardware", status: "pass", detail: `${detail}${seen}` };
}

async function checkWorker(earlier: DoctorCheck[], pythonPath: string | undefined): Promise<DoctorCheck> {
  if (earlier.some((check) => check.name === "interpreter" && check.status === "fail")) {
    return { name: "worker round trip", status: "fail", detail: "skipped: no usable interpreter", fix: "fix the interpreter first" };
  }
  const started = performance.now();
  const pool = await Pool.start({
    adapter: "snakepit_bridge.examples.echo:EchoAdapter",
    workerLogs: "silent",
    handleSignals: false,
    ...(pythonPath === undefined ? {} : { pythonPath }),
    startTimeoutMs: 30_000,
  });
  try {
    const answer = await pool.call("echo", { value: "doctor" }, { timeoutMs: 10_000 });
    if (answer !== "doctor") return { name: "worker round trip", status: "fail", detail: `the worker answered ${JSON.stringify(answer)}` };
    return { name: "worker round trip", status: "pass", detail: `a worker started and answered in ${Math.round(performance.now() - started)} ms` };
  } finally {
    await pool.close();
  }
}
