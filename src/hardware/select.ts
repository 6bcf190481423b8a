/**
 * Device selection: the preferred backend when it is usable, else CUDA → MPS → ROCm → CPU.
 *
 * @module
 */
import process from "node:process";
import { z } from "zod";
import { parseTelemetryOptions } from "../telemetry/_parse_options.ts";
import type { Hardware } from "./detect.ts";

/** A compute backend. */
export type Backend = "cuda" | "mps" | "rocm" | "cpu";

/** Options of `selectDevice`. */
export interface SelectOptions {
  /** The backend to try first. Default `"cuda"` (the fallback order then applies). */
  prefer?: Backend;
  /** A GPU needs at least this much free memory to be chosen. Default 0. */
  minFreeMemoryMb?: number;
  /** Environment read for `CUDA_VISIBLE_DEVICES` / `HIP_VISIBLE_DEVICES`. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/** The chosen device. */
export interface DeviceSelection {
  backend: Backend;
  /** What to hand the framework: `"cuda:0"`, `"mps"`, `"cpu"`. The ordinal counts visible devices only. */
  device: string;
  /** The device's index as nvidia-smi / rocm-smi number it (undefined for MPS and CPU). */
  physicalIndex: number | undefined;
  /** Why this one, including why better ones were passed over. */
  reason: string;
}

const BACKENDS = ["cuda", "mps", "rocm", "cpu"] as const;
const FALLBACK_ORDER: readonly Backend[] = BACKENDS;

const optionsSchema = z.object({
  prefer: z.enum(BACKENDS, { message: 'must be "cuda", "mps", "rocm" or "cpu"' }).default("cuda"),
  minFreeMemoryMb: z.number({ invalid_type_error: "must be a number" }).min(0, { message: "must be at least 0" }).default(0),
  env: z.record(z.string().optional(), { invalid_type_error: "must be an object" }).optional(),
}).strict();

/** Indices visible under a `*_VISIBLE_DEVICES` value (indices or UUIDs); undefined means all. */
function visibleDevices(value: string | undefined, devices: Array<{ index: number; uuid?: string }>): number[] | undefined {
  if (value === undefined) return undefined;
  const visible: number[] = [];
  for (const entry of value.split(",").map((part) => part.trim()).filter((part) => part !== "")) {
    // The runtime stops at the first invalid entry (e.g. -1 hides everything after it).
    const device = /^\d+$/.test(entry) ? devices.find((candidate) => candidate.index === Number(entry)) : devices.find((candidate) => candidate.uuid?.startsWith(entry));
    if (!device) break;
    visible.push(device.index);
  }
  return visible;
}

interface Gpu {
  index: number;
  uuid?: string;
  memoryFreeBytes: number;
}

function pickGpu(backend: "cuda" | "rocm", devices: Gpu[], visibleValue: string | undefined, minFreeBytes: number, notes: string[]): DeviceSelection | undefined {
  if (devices.length === 0) {
    notes.push(`no ${backend} devices`);
    return undefined;
  }
  const visible = visibleDevices(visibleValue, devices) ?? devices.map((device) => device.index);
  if (visible.length === 0) {
    notes.push(`${backend} devices hidden by ${backend === "cuda" ? "CUDA" : "HIP"}_VISIBLE_DEVICES=${JSON.stringify(visibleValue)}`);
    return undefined;
  }
  let best: { ordinal: number; device: Gpu } | undefined;
  visible.forEach((index, ordinal) => {
    const device = devices.find((candidate) => candidate.index === index)!;
    if (device.memoryFreeBytes < minFreeBytes) return;
    if (!best || device.memoryFreeBytes > best.device.memoryFreeBytes) best = { ordinal, device };
  });
  if (!best) {
    notes.push(`no visible ${backend} device has ${minFreeBytes / 1048576} MiB free`);
    return undefined;
  }
  const free = Math.round(best.device.memoryFreeBytes / 1048576);
  return {
    backend,
    device: `cuda:${best.ordinal}`,
    physicalIndex: best.device.index,
    reason: [...notes, `${backend} device ${best.device.index} has the most free memory (${free} MiB)`].join("; "),
  };
}

/**
 * Picks a device from detected hardware: `prefer` first, then CUDA → MPS → ROCm → CPU, honouring
 * `CUDA_VISIBLE_DEVICES` (indices or UUID prefixes) and `minFreeMemoryMb`. CPU always works.
 * ROCm devices are named `cuda:N` too, as PyTorch's HIP build names them.
 *
 * @example
 * ```ts
 * const choice = selectDevice(await detect(), { prefer: "cuda", minFreeMemoryMb: 4096 });
 * console.log(choice.device, choice.reason); // "cuda:0" ... or "cpu" ...
 * ```
 */
export function selectDevice(hardware: Hardware, options: SelectOptions = {}): DeviceSelection {
  const parsed = parseTelemetryOptions(optionsSchema, options, "select device");
  const env = parsed.env ?? process.env;
  const minFreeBytes = parsed.minFreeMemoryMb * 1048576;
  const order = [parsed.prefer, ...FALLBACK_ORDER.filter((backend) => backend !== parsed.prefer)];
  const notes: string[] = [];
  for (const backend of order) {
    if (backend === "cuda") {
      const choice = pickGpu("cuda", hardware.cuda, env.CUDA_VISIBLE_DEVICES, minFreeBytes, notes);
      if (choice) return choice;
    } else if (backend === "rocm") {
      const choice = pickGpu("rocm", hardware.rocm, env.HIP_VISIBLE_DEVICES ?? env.ROCR_VISIBLE_DEVICES, minFreeBytes, notes);
      if (choice) return choice;
    } else if (backend === "mps") {
      if (hardware.mps) return { backend, device: "mps", physicalIndex: undefined, reason: [...notes, "Apple MPS is available"].join("; ") };
      notes.push("no Apple MPS");
    } else {
      return { backend: "cpu", device: "cpu", physicalIndex: undefined, reason: [...notes, "falling back to the CPU"].join("; ") };
    }
  }
  throw new Error("unreachable: the CPU is always in the fallback order");
}
