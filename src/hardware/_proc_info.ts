// Parsers of /proc/cpuinfo and /proc/meminfo (Linux); pure functions, tested on recorded text.

/** The CPU flags worth reporting (the rest of /proc/cpuinfo's list is noise for ML work). */
export const CPU_FLAGS_OF_INTEREST = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "neon", "asimd"] as const;

/** What /proc/cpuinfo tells. */
export interface CpuInfo {
  model: string;
  /** Physical cores (distinct physical id / core id pairs); equals threads when unknown. */
  cores: number;
  /** Logical processors. */
  threads: number;
  /** Flags of interest present (`avx2`, `avx512f`, `fma`, ...). */
  flags: string[];
}

/** Parses /proc/cpuinfo text. */
export function parseCpuInfo(text: string): CpuInfo {
  const blocks = text.split(/\n\s*\n/).filter((block) => /^processor\s*:/m.test(block));
  const field = (block: string, name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(block)?.[1]?.trim();
  const first = blocks[0] ?? "";
  const model = field(first, "model name") ?? field(first, "Model") ?? field(first, "Hardware") ?? "unknown";
  const physical = new Set<string>();
  for (const block of blocks) {
    const socket = field(block, "physical id");
    const core = field(block, "core id");
    if (socket !== undefined && core !== undefined) physical.add(`${socket}:${core}`);
  }
  const present = new Set((field(first, "flags") ?? field(first, "Features") ?? "").split(/\s+/));
  return {
    model,
    cores: physical.size > 0 ? physical.size : blocks.length,
    threads: blocks.length,
    flags: CPU_FLAGS_OF_INTEREST.filter((flag) => present.has(flag)),
  };
}

/** What /proc/meminfo tells, in bytes. */
export interface MemoryInfo {
  totalBytes: number;
  availableBytes: number;
}

/** Parses /proc/meminfo text (values are in kB). */
export function parseMemInfo(text: string): MemoryInfo {
  const kilobytes = (name: string) => Number(new RegExp(`^${name}:\\s*(\\d+)\\s*kB`, "m").exec(text)?.[1] ?? 0);
  return { totalBytes: kilobytes("MemTotal") * 1024, availableBytes: (kilobytes("MemAvailable") || kilobytes("MemFree")) * 1024 };
}
