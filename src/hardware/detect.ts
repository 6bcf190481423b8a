/**
 * Hardware detection: CPU, memory, CUDA (nvidia-smi), ROCm (rocm-smi) and Apple MPS. Cached;
 * `refresh: true` detects again.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import process from "node:process";
import { z } from "zod";
import { parseTelemetryOptions } from "../telemetry/_parse_options.ts";
import { type CudaDevice, queryNvidiaSmi, runQuietly } from "./_nvidia_smi.ts";
import { type CpuInfo, type MemoryInfo, parseCpuInfo, parseMemInfo } from "./_proc_info.ts";

export type { CudaDevice } from "./_nvidia_smi.ts";
export type { CpuInfo, MemoryInfo } from "./_proc_info.ts";

/** One ROCm device as rocm-smi reports it. */
export interface RocmDevice {
  index: number;
  name: string;
  memoryTotalBytes: number;
  memoryFreeBytes: number;
}

/** What `detect()` found. */
export interface Hardware {
  platform: string;
  arch: string;
  cpu: CpuInfo;
  memory: MemoryInfo;
  /** CUDA devices (all of them; `CUDA_VISIBLE_DEVICES` applies in `select`). */
  cuda: CudaDevice[];
  rocm: RocmDevice[];
  /** Apple Metal Performance Shaders (macOS on Apple silicon). */
  mps: boolean;
  detectedAt: string;
}

/** Options of `detect`. */
export interface DetectOptions {
  /** Detect again instead of returning the cached result. Default false. */
  refresh?: boolean;
  /** The nvidia-smi executable. Default `"nvidia-smi"` on `PATH`. */
  nvidiaSmiPath?: string;
  /** The rocm-smi executable. Default `"rocm-smi"` on `PATH`. */
  rocmSmiPath?: string;
  /** Where /proc is (recorded trees in tests). Default `"/proc"`. */
  procRoot?: string;
}

const optionsSchema = z.object({
  refresh: z.boolean({ invalid_type_error: "must be a boolean" }).default(false),
  nvidiaSmiPath: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must not be empty" }).default("nvidia-smi"),
  rocmSmiPath: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must not be empty" }).default("rocm-smi"),
  procRoot: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must not be empty" }).default("/proc"),
}).strict();

const cache = new Map<string, Promise<Hardware>>();

/**
 * Detects the machine's hardware; the result is cached per option set (`refresh: true` redoes it).
 * Never throws for missing tools: no nvidia-smi means no CUDA devices.
 *
 * @example
 * ```ts
 * const hardware = await detect();
 * console.log(hardware.cpu.model, hardware.cpu.flags, hardware.cuda.length);
 * ```
 */
export function detect(options: DetectOptions = {}): Promise<Hardware> {
  const parsed = parseTelemetryOptions(optionsSchema, options, "detect hardware");
  const key = JSON.stringify([parsed.nvidiaSmiPath, parsed.rocmSmiPath, parsed.procRoot]);
  const cached = cache.get(key);
  if (cached && !parsed.refresh) return cached;
  const detection = detectNow(parsed);
  cache.set(key, detection);
  detection.catch(() => cache.delete(key));
  return detection;
}

async function detectNow(options: z.output<typeof optionsSchema>): Promise<Hardware> {
  const [cuda, rocm] = await Promise.all([queryNvidiaSmi(options.nvidiaSmiPath), queryRocmSmi(options.rocmSmiPath)]);
  return {
    platform: process.platform,
    arch: process.arch,
    cpu: cpuInfo(options.procRoot),
    memory: memoryInfo(options.procRoot),
    cuda,
    rocm,
    mps: process.platform === "darwin" && process.arch === "arm64",
    detectedAt: new Date().toISOString(),
  };
}

function cpuInfo(procRoot: string): CpuInfo {
  try {
    return parseCpuInfo(readFileSync(`${procRoot}/cpuinfo`, "utf8"));
  } catch {
    const cpus = os.cpus();
    return { model: cpus[0]?.model ?? "unknown", cores: cpus.length, threads: cpus.length, flags: [] };
  }
}

function memoryInfo(procRoot: string): MemoryInfo {
  try {
    return parseMemInfo(readFileSync(`${procRoot}/meminfo`, "utf8"));
  } catch {
    return { totalBytes: os.totalmem(), availableBytes: os.freemem() };
  }
}

async function queryRocmSmi(rocmSmi: string): Promise<RocmDevice[]> {
  const output = await runQuietly(rocmSmi, ["--showproductname", "--showmeminfo", "vram", "--json"]);
  if (output === undefined) return [];
  try {
    const cards = JSON.parse(output) as Record<string, Record<string, string>>;
    return Object.entries(cards).filter(([name]) => /^card\d+$/.test(name)).map(([name, fields]) => {
      const total = Number(fields["VRAM Total Memory (B)"] ?? 0);
      return {
        index: Number(name.slice(4)),
        name: fields["Card series"] ?? fields["Card SKU"] ?? name,
        memoryTotalBytes: total,
        memoryFreeBytes: total - Number(fields["VRAM Total Used Memory (B)"] ?? 0),
      };
    });
  } catch {
    return [];
  }
}

/** What the machine can do, as booleans and counts. */
export interface Capabilities {
  cuda: boolean;
  cudaDevices: number;
  rocm: boolean;
  mps: boolean;
  avx2: boolean;
  avx512f: boolean;
  fma: boolean;
}

/**
 * The capabilities of detected hardware.
 *
 * @example
 * ```ts
 * const { cuda, avx2 } = capabilities(await detect());
 * ```
 */
export function capabilities(hardware: Hardware): Capabilities {
  const flags = new Set(hardware.cpu.flags);
  return {
    cuda: hardware.cuda.length > 0,
    cudaDevices: hardware.cuda.length,
    rocm: hardware.rocm.length > 0,
    mps: hardware.mps,
    avx2: flags.has("avx2"),
    avx512f: flags.has("avx512f"),
    fma: flags.has("fma"),
  };
}

/** A stable summary of the hardware for lock files: what changes builds, not what changes by the minute. */
export interface HardwareIdentity {
  /** Human-readable, e.g. `linux-x64 cpu=avx2,fma cuda=12.4 sm_90x2`. */
  summary: string;
  /** sha256 of the summary, 16 hex digits. */
  hash: string;
}

/**
 * The hardware's identity: platform, CPU flags, CUDA version and device models; never free memory,
 * utilisation or timestamps, so it is the same from one run to the next.
 *
 * @example
 * ```ts
 * const { summary, hash } = identity(await detect());
 * ```
 */
export function identity(hardware: Hardware): HardwareIdentity {
  const parts = [`${hardware.platform}-${hardware.arch}`, `cpu=${hardware.cpu.flags.join(",") || "baseline"}`];
  if (hardware.cuda.length > 0) {
    const models = new Map<string, number>();
    for (const device of hardware.cuda) {
      const model = `${device.name.replaceAll(" ", "_")}/sm_${device.computeCapability?.replace(".", "") ?? "unknown"}`;
      models.set(model, (models.get(model) ?? 0) + 1);
    }
    parts.push(`cuda=${hardware.cuda[0]!.cudaVersion ?? "unknown"}`, ...[...models].sort().map(([model, count]) => `${model}x${count}`));
  }
  if (hardware.rocm.length > 0) parts.push(`rocm=${hardware.rocm.map((device) => device.name.replaceAll(" ", "_")).sort().join(",")}`);
  if (hardware.mps) parts.push("mps");
  const summary = parts.join(" ");
  return { summary, hash: createHash("sha256").update(summary).digest("hex").slice(0, 16) };
}
