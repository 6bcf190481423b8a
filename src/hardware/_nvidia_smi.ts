// Runs and parses nvidia-smi. Absent or failing nvidia-smi means "no CUDA devices", never an error.
import { execFile } from "node:child_process";

/** The fields queried, in order. */
export const NVIDIA_SMI_QUERY = "index,name,uuid,memory.total,memory.free,memory.used,utilization.gpu,compute_cap,driver_version";
const COMMAND_TIMEOUT_MS = 5000;

/** One CUDA device as nvidia-smi reports it. */
export interface CudaDevice {
  index: number;
  name: string;
  uuid: string;
  memoryTotalBytes: number;
  memoryFreeBytes: number;
  memoryUsedBytes: number;
  /** GPU utilisation, 0-100, or null when not reported. */
  utilizationPercent: number | null;
  /** `"9.0"`, or null before driver 510 (the field did not exist). */
  computeCapability: string | null;
  driverVersion: string;
  /** The highest CUDA version the driver supports, from nvidia-smi's banner. */
  cudaVersion: string | null;
}

const MIB = 1024 * 1024;

function numberOrNull(text: string | undefined): number | null {
  const value = Number(text);
  return text === undefined || text === "" || /N\/A|Not Supported/i.test(text) || !Number.isFinite(value) ? null : value;
}

/** Parses `--query-gpu=<NVIDIA_SMI_QUERY> --format=csv,noheader,nounits` output and the banner. */
export function parseNvidiaSmi(queryCsv: string, banner: string): CudaDevice[] {
  const cudaVersion = /CUDA Version:\s*([\d.]+)/.exec(banner)?.[1] ?? null;
  const devices: CudaDevice[] = [];
  for (const line of queryCsv.split("\n")) {
    const fields = line.split(",").map((field) => field.trim());
    if (fields.length < 9 || !/^\d+$/.test(fields[0]!)) continue;
    const [index, name, uuid, total, free, used, utilization, computeCapability, driverVersion] = fields;
    devices.push({
      index: Number(index),
      name: name!,
      uuid: uuid!,
      memoryTotalBytes: (numberOrNull(total) ?? 0) * MIB,
      memoryFreeBytes: (numberOrNull(free) ?? 0) * MIB,
      memoryUsedBytes: (numberOrNull(used) ?? 0) * MIB,
      utilizationPercent: numberOrNull(utilization),
      computeCapability: numberOrNull(computeCapability) === null ? null : computeCapability!,
      driverVersion: driverVersion!,
      cudaVersion,
    });
  }
  return devices;
}

/** Runs `command args`; resolves its stdout, or undefined when it is missing, fails or hangs. */
export function runQuietly(command: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    try {
      execFile(command, args, { timeout: COMMAND_TIMEOUT_MS, encoding: "utf8" }, (error, stdout) => resolve(error ? undefined : stdout));
    } catch {
      resolve(undefined);
    }
  });
}

/** The CUDA devices `nvidiaSmi` reports; empty when it is absent or the driver is not loaded. */
export async function queryNvidiaSmi(nvidiaSmi: string): Promise<CudaDevice[]> {
  const query = await runQuietly(nvidiaSmi, [`--query-gpu=${NVIDIA_SMI_QUERY}`, "--format=csv,noheader,nounits"]);
  if (query === undefined) return [];
  const banner = (await runQuietly(nvidiaSmi, [])) ?? "";
  return parseNvidiaSmi(query, banner);
}
