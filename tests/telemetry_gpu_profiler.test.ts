import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import process from "node:process";
import { Registry } from "prom-client";
import { GpuProfiler, type GpuSample } from "../mod.ts";
import { waitFor } from "./_helpers.ts";

const FAKE_NVIDIA_SMI = resolve("tests/fixtures/nvidia_smi/bin/nvidia-smi");

describe("GPU profiler", () => {
  test("samples device memory and utilisation at an interval into gauges promtool accepts", async () => {
    process.env.SNAKEPIT_NVIDIA_SMI_FIXTURE = "h100_x2";
    const registry = new Registry();
    const samples: GpuSample[][] = [];
    const profiler = new GpuProfiler({ nvidiaSmiPath: FAKE_NVIDIA_SMI, registry, intervalMs: 100, onSample: (sample) => samples.push(sample) });
    try {
      profiler.start();
      await waitFor(() => samples.length >= 2, 5000, "two samples");
    } finally {
      profiler.stop();
      delete process.env.SNAKEPIT_NVIDIA_SMI_FIXTURE;
    }
    assert.deepEqual(samples[0]![1], { index: 1, name: "NVIDIA H100 80GB HBM3", memoryUsedBytes: 79102 * 1048576, memoryTotalBytes: 81559 * 1048576, utilizationPercent: 97 });
    const text = await registry.metrics();
    assert.match(text, /^snakepit_gpu_memory_used_bytes\{gpu="1",name="NVIDIA H100 80GB HBM3"\} 82944458752$/m);
    assert.match(text, /^snakepit_gpu_utilization_ratio\{gpu="1",name="NVIDIA H100 80GB HBM3"\} 0\.97$/m);
    const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    if (check.error && process.env.CI === "true") throw new Error("promtool is not installed; `make setup` installs it");
    if (!check.error) assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  });

  test("without nvidia-smi it reports nothing, without error", async () => {
    const registry = new Registry();
    const profiler = new GpuProfiler({ nvidiaSmiPath: "/nonexistent/nvidia-smi", registry, intervalMs: 100 });
    assert.deepEqual(await profiler.sample(), []);
    profiler.start();
    await waitFor(() => profiler.samples >= 3, 5000, "more samples");
    profiler.stop();
    assert.deepEqual(profiler.latest, []);
    assert.doesNotMatch(await registry.metrics(), /^snakepit_gpu_\w+\{/m, "no series without a GPU");
  });

  test("on this machine (no GPU here) a sample is empty; where nvidia-smi works it lists devices", async () => {
    const sample = await new GpuProfiler().sample();
    const hasGpu = spawnSync("nvidia-smi", ["-L"]).status === 0;
    assert.equal(sample.length > 0, hasGpu);
  });

  test("invalid options fail fast naming the option and the value", () => {
    assert.throws(() => new GpuProfiler({ intervalMs: 5 }), {
      name: "RangeError",
      message: "Cannot create GPU profiler: options.intervalMs must be at least 100, received 5",
    });
  });
});
