// Small statistics and table helpers for the benchmarks (bench/ only; never imported by src/).

/** The q-quantile (0..1) of `samples` (sorted in place). */
export function quantile(samples: number[], q: number): number {
  samples.sort((a, b) => a - b);
  const index = Math.min(samples.length - 1, Math.max(0, Math.ceil(q * samples.length) - 1));
  return samples[index]!;
}

/** Latencies (µs) of `count` sequential runs of `call`, after `warmup` unmeasured ones. */
export async function sequentialLatenciesUs(call: () => Promise<unknown>, count: number, warmup: number): Promise<number[]> {
  for (let index = 0; index < warmup; index++) await call();
  const samples: number[] = [];
  for (let index = 0; index < count; index++) {
    const start = performance.now();
    await call();
    samples.push((performance.now() - start) * 1000);
  }
  return samples;
}

/** Calls per second with `concurrency` calls always in flight, for `total` calls. */
export async function throughput(call: () => Promise<unknown>, concurrency: number, total: number): Promise<number> {
  let issued = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (issued < total) {
      issued += 1;
      await call();
    }
  }));
  return total / ((performance.now() - start) / 1000);
}

/** Prints rows as an aligned text table. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padStart(widths[column]!)).join("  ");
  console.log(line(header));
  console.log(widths.map((width) => "-".repeat(width)).join("  "));
  for (const row of rows) console.log(line(row));
}

/** The runtime running the benchmark. */
export const RUNTIME = "Bun" in globalThis ? `bun ${(globalThis as { Bun?: { version: string } }).Bun?.version}` : "Deno" in globalThis
  ? `deno ${(globalThis as { Deno?: { version: { deno: string } } }).Deno?.version.deno}`
  : `node ${globalThis.process?.version}`;
