/**
 * `GpuProfiler`: samples GPU memory and utilisation through nvidia-smi at an interval, into
 * Prometheus gauges and a `latest` snapshot. Without nvidia-smi (or a loaded driver) it reports
 * nothing, without error.
 *
 * @module
 */
import { Gauge, type Registry } from "prom-client";
import { z } from "zod";
import { type CudaDevice, queryNvidiaSmi } from "../hardware/_nvidia_smi.ts";
import { parseTelemetryOptions } from "./_parse_options.ts";

/** Options of `GpuProfiler`. */
export interface GpuProfilerOptions {
  /** Time between samples. Default 5000 ms; 100 to 3600000. */
  intervalMs?: number;
  /** The nvidia-smi executable. Default `"nvidia-smi"` on `PATH`. */
  nvidiaSmiPath?: string;
  /** Registry for the `gpu_*` gauges. Default: none (samples only). */
  registry?: Registry;
  /** Metric name prefix. Default `"snakepit_"`. */
  prefix?: string;
  /** Called with each sample (empty when there is no GPU). Default none. */
  onSample?: (devices: GpuSample[]) => void;
}

/** One device in a sample. */
export interface GpuSample {
  index: number;
  name: string;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
  utilizationPercent: number | null;
}

const optionsSchema = z.object({
  intervalMs: z.number({ invalid_type_error: "must be a number of milliseconds" }).int({ message: "must be a whole number of milliseconds" })
    .min(100, { message: "must be at least 100" }).max(3_600_000, { message: "must be at most 3600000" }).default(5000),
  nvidiaSmiPath: z.string({ invalid_type_error: "must be a string" }).min(1, { message: "must not be empty" }).default("nvidia-smi"),
  registry: z.custom<Registry>((value) => typeof (value as Registry)?.registerMetric === "function", { message: "must be a prom-client Registry" })
    .optional(),
  prefix: z.string({ invalid_type_error: "must be a string" }).regex(/^[a-z_][a-z0-9_]*$/, { message: "must be snake_case ([a-z_][a-z0-9_]*)" })
    .default("snakepit_"),
  onSample: z.custom<(devices: GpuSample[]) => void>((value) => typeof value === "function", { message: "must be a function" }).optional(),
}).strict();

/**
 * Samples GPUs until `stop()`; the timer does not keep the process alive.
 *
 * @example
 * ```ts
 * const metrics = new PoolMetrics();
 * const profiler = new GpuProfiler({ registry: metrics.registry, intervalMs: 10_000 });
 * profiler.start();
 * // ... later
 * profiler.stop();
 * ```
 */
export class GpuProfiler {
  readonly #options: z.output<typeof optionsSchema>;
  readonly #memoryUsed: Gauge<"gpu" | "name"> | undefined;
  readonly #memoryTotal: Gauge<"gpu" | "name"> | undefined;
  readonly #utilization: Gauge<"gpu" | "name"> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #latest: GpuSample[] = [];
  #samples = 0;

  constructor(options: GpuProfilerOptions = {}) {
    this.#options = parseTelemetryOptions(optionsSchema, options, "create GPU profiler");
    const registry = this.#options.registry;
    if (registry) {
      const gauge = (name: string, help: string) =>
        new Gauge({ name: `${this.#options.prefix}${name}`, help, labelNames: ["gpu", "name"], registers: [registry] });
      this.#memoryUsed = gauge("gpu_memory_used_bytes", "GPU memory in use, from nvidia-smi.");
      this.#memoryTotal = gauge("gpu_memory_total_bytes", "GPU memory in all, from nvidia-smi.");
      this.#utilization = gauge("gpu_utilization_ratio", "GPU utilisation over the driver's last sample period, 0 to 1.");
    }
  }

  /** The last sample (empty before the first, or without a GPU). */
  get latest(): readonly GpuSample[] {
    return this.#latest;
  }

  /** Samples taken so far (each one, GPU or not). */
  get samples(): number {
    return this.#samples;
  }

  /** Takes one sample now. Never rejects: no nvidia-smi means an empty sample. */
  async sample(): Promise<GpuSample[]> {
    const devices: CudaDevice[] = await queryNvidiaSmi(this.#options.nvidiaSmiPath);
    const sample = devices.map((device) => ({
      index: device.index,
      name: device.name,
      memoryUsedBytes: device.memoryUsedBytes,
      memoryTotalBytes: device.memoryTotalBytes,
      utilizationPercent: device.utilizationPercent,
    }));
    this.#memoryUsed?.reset();
    this.#memoryTotal?.reset();
    this.#utilization?.reset();
    for (const device of sample) {
      const labels = { gpu: String(device.index), name: device.name };
      this.#memoryUsed?.set(labels, device.memoryUsedBytes);
      this.#memoryTotal?.set(labels, device.memoryTotalBytes);
      if (device.utilizationPercent !== null) this.#utilization?.set(labels, device.utilizationPercent / 100);
    }
    this.#latest = sample;
    this.#samples += 1;
    try {
      this.#options.onSample?.(sample);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
    return sample;
  }

  /** Starts sampling every `intervalMs` (the first sample at once). Idempotent. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const tick = async () => {
      await this.sample();
      if (!this.#running) return;
      this.#timer = setTimeout(tick, this.#options.intervalMs);
      unref(this.#timer);
    };
    void tick();
  }

  /** Stops sampling. */
  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

function unref(timer: unknown): void {
  if (typeof timer === "number") (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno?.unrefTimer(timer);
  else (timer as { unref?: () => void }).unref?.();
}
