// CPU-time helpers for the benchmarks (bench/ only; never imported by src/). Linux: /proc.
import { readFileSync } from "node:fs";
import process from "node:process";

/** Kernel clock ticks per second (USER_HZ), fixed at 100 on Linux for /proc/<pid>/stat. */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name may hold spaces and parentheses, so fields are counted after its last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** CPU used by this process and `pids` while `seconds` pass idle, as % of one core. */
export async function cpuPercentWhileIdle(pids: number[], seconds: number): Promise<number> {
  const hostBefore = process.cpuUsage();
  const pidsBefore = pids.map(processCpuSeconds);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const host = process.cpuUsage(hostBefore);
  const others = pids.map(processCpuSeconds).reduce(
    (sum, cpuSeconds, index) => sum + cpuSeconds - pidsBefore[index]!,
    0,
  );
  return ((host.user + host.system) / 1e6 + others) / seconds * 100;
}
