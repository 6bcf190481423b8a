import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import process from "node:process";
import { capabilities, detect, type Hardware, identity, selectDevice } from "../mod.ts";

const FAKE_NVIDIA_SMI = resolve("tests/fixtures/nvidia_smi/bin/nvidia-smi");
const PROC_XEON = resolve("tests/fixtures/proc_xeon");
const MIB = 1024 * 1024;

/** Runs detection against the stand-in nvidia-smi printing the named recording. */
async function detectWithFixture(fixture: string): Promise<Hardware> {
  const previous = process.env.SNAKEPIT_NVIDIA_SMI_FIXTURE;
  process.env.SNAKEPIT_NVIDIA_SMI_FIXTURE = fixture;
  try {
    return await detect({ nvidiaSmiPath: FAKE_NVIDIA_SMI, procRoot: PROC_XEON, rocmSmiPath: "/nonexistent/rocm-smi", refresh: true });
  } finally {
    if (previous === undefined) delete process.env.SNAKEPIT_NVIDIA_SMI_FIXTURE;
    else process.env.SNAKEPIT_NVIDIA_SMI_FIXTURE = previous;
  }
}

describe("hardware detection", () => {
  test("CPU model, cores, threads and flags come from /proc/cpuinfo, memory from /proc/meminfo", async () => {
    const hardware = await detectWithFixture("h100_x2");
    assert.deepEqual(hardware.cpu, {
      model: "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
      cores: 2,
      threads: 4,
      flags: ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni"],
    });
    assert.deepEqual(hardware.memory, { totalBytes: 16131836 * 1024, availableBytes: 12210048 * 1024 });
  });

  test("CUDA devices come from nvidia-smi: name, memory, utilisation, compute capability, driver and CUDA versions", async () => {
    const hardware = await detectWithFixture("h100_x2");
    assert.equal(hardware.cuda.length, 2);
    assert.deepEqual(hardware.cuda[1], {
      index: 1,
      name: "NVIDIA H100 80GB HBM3",
      uuid: "GPU-9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
      memoryTotalBytes: 81559 * MIB,
      memoryFreeBytes: 2048 * MIB,
      memoryUsedBytes: 79102 * MIB,
      utilizationPercent: 97,
      computeCapability: "9.0",
      driverVersion: "550.54.15",
      cudaVersion: "12.4",
    });
    assert.deepEqual(capabilities(hardware), { cuda: true, cudaDevices: 2, rocm: false, mps: false, avx2: true, avx512f: true, fma: true });
  });

  test("an old driver without compute_cap reports null, not a made-up number", async () => {
    const [device] = (await detectWithFixture("t4_old_driver")).cuda;
    assert.equal(device?.computeCapability, null);
    assert.equal(device?.cudaVersion, "11.4");
    assert.equal(device?.memoryFreeBytes, 14911 * MIB);
  });

  test("a failing nvidia-smi (driver not loaded) and a missing one both mean no CUDA devices, without error", async () => {
    assert.deepEqual((await detectWithFixture("failed")).cuda, []);
    const missing = await detect({ nvidiaSmiPath: "/nonexistent/nvidia-smi", refresh: true });
    assert.deepEqual(missing.cuda, []);
  });

  test("the real machine is detected (this one has no GPU) and the result is cached until refreshed", async () => {
    const first = await detect();
    assert.ok(first.cpu.threads >= 1);
    assert.ok(first.memory.totalBytes > 0);
    assert.ok(first.cpu.model.length > 0);
    assert.ok(Array.isArray(first.cuda));
    assert.equal(await detect(), first, "cached");
    const again = await detect({ refresh: true });
    assert.notEqual(again, first, "refreshed");
    assert.equal(identity(again).hash, identity(first).hash, "the identity is stable across detections");
  });

  test("identity summarises what changes builds and ignores free memory and utilisation", async () => {
    const hardware = await detectWithFixture("h100_x2");
    const busy = { ...hardware, cuda: hardware.cuda.map((device) => ({ ...device, memoryFreeBytes: 0, utilizationPercent: 100 })) };
    assert.equal(identity(hardware).summary, `${process.platform}-${process.arch} cpu=sse4_2,avx,avx2,fma,f16c,avx512f,avx512bw,avx512_vnni cuda=12.4 NVIDIA_H100_80GB_HBM3/sm_90x2`);
    assert.equal(identity(busy).hash, identity(hardware).hash);
    assert.match(identity(hardware).hash, /^[0-9a-f]{16}$/);
  });
});

describe("device selection", () => {
  test("CUDA is preferred and the device with the most free memory wins", async () => {
    const choice = selectDevice(await detectWithFixture("h100_x2"), { env: {} });
    assert.deepEqual([choice.backend, choice.device, choice.physicalIndex], ["cuda", "cuda:0", 0]);
  });

  test("CUDA_VISIBLE_DEVICES is honoured, and the device ordinal counts visible devices only", async () => {
    const hardware = await detectWithFixture("h100_x2");
    const choice = selectDevice(hardware, { env: { CUDA_VISIBLE_DEVICES: "1" } });
    assert.deepEqual([choice.device, choice.physicalIndex], ["cuda:0", 1]);
    const byUuid = selectDevice(hardware, { env: { CUDA_VISIBLE_DEVICES: "GPU-9c8b7a6d" } });
    assert.equal(byUuid.physicalIndex, 1);
    const hidden = selectDevice(hardware, { env: { CUDA_VISIBLE_DEVICES: "" } });
    assert.equal(hidden.backend, "cpu");
    assert.match(hidden.reason, /hidden by CUDA_VISIBLE_DEVICES=""/);
  });

  test("a minimum of free memory skips full devices and falls back to the CPU when none qualifies", async () => {
    const hardware = await detectWithFixture("h100_x2");
    assert.equal(selectDevice(hardware, { env: { CUDA_VISIBLE_DEVICES: "1,0" }, minFreeMemoryMb: 4096 }).device, "cuda:1");
    const none = selectDevice(hardware, { env: {}, minFreeMemoryMb: 100_000 });
    assert.equal(none.device, "cpu");
    assert.match(none.reason, /no visible cuda device has 100000 MiB free.*no Apple MPS.*no rocm devices.*falling back to the CPU/);
  });

  test("prefer changes the first choice; MPS comes before ROCm and the CPU", async () => {
    const hardware = await detectWithFixture("h100_x2");
    assert.equal(selectDevice(hardware, { prefer: "cpu" }).device, "cpu");
    const mac = { ...hardware, cuda: [], mps: true };
    assert.equal(selectDevice(mac, { env: {} }).device, "mps");
    const amd = { ...hardware, cuda: [], rocm: [{ index: 0, name: "AMD Instinct MI250X", memoryTotalBytes: 64 * 1024 * MIB, memoryFreeBytes: 60 * 1024 * MIB }] };
    assert.deepEqual([selectDevice(amd, { env: {} }).backend, selectDevice(amd, { env: {} }).device], ["rocm", "cuda:0"]);
  });

  test("invalid options fail fast naming the option and the value", async () => {
    const hardware = await detectWithFixture("h100_x2");
    assert.throws(() => selectDevice(hardware, { prefer: "tpu" as "cpu" }), {
      name: "TypeError",
      message: 'Cannot select device: options.prefer must be "cuda", "mps", "rocm" or "cpu", received "tpu"',
    });
    assert.throws(() => selectDevice(hardware, { minFreeMemoryMb: -1 }), { name: "RangeError", message: /options\.minFreeMemoryMb must be at least 0, received -1/ });
    assert.throws(() => detect({ nvidiaSmiPath: "" }), { name: "RangeError", message: /^Cannot detect hardware: options\.nvidiaSmiPath must not be empty/ });
  });
});
