/**
 * Ready-made `components` for `healthRouter`: shared memory, the Python environment, hardware.
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { detect, identity } from "../hardware/detect.ts";
import { resolvePython } from "../python_env/resolve.ts";
import { validatePython } from "../python_env/validate.ts";
import type { HealthComponent } from "./health_router.ts";

const MIB = 1024 * 1024;

/**
 * Fails when the shared-memory file system has less than `minFreeBytes` free (default 64 MiB).
 *
 * @example
 * ```ts
 * healthRouter({ pools: [pool], components: { sharedMemory: sharedMemoryComponent({ required: true }) } });
 * ```
 */
export function sharedMemoryComponent(options: { path?: string; minFreeBytes?: number; required?: boolean } = {}): HealthComponent {
  const path = options.path ?? "/dev/shm";
  const minFreeBytes = options.minFreeBytes ?? 64 * MIB;
  if (!Number.isFinite(minFreeBytes) || minFreeBytes < 0) {
    throw new RangeError(`Cannot create shared-memory check: options.minFreeBytes must be a non-negative number, received ${minFreeBytes}`);
  }
  return {
    required: options.required ?? false,
    check: () => {
      const stats = statfsSync(path);
      const freeBytes = Number(stats.bavail) * Number(stats.bsize);
      const details = { path, freeBytes, totalBytes: Number(stats.blocks) * Number(stats.bsize) };
      if (freeBytes < minFreeBytes) {
        return { status: "fail", reason: `${Math.round(freeBytes / MIB)} MiB free in ${path}, under ${Math.round(minFreeBytes / MIB)} MiB`, details };
      }
      return { status: "pass", details };
    },
  };
}

/**
 * Reports the interpreter the workers use and whether it has the modules they need. The check
 * runs Python, so keep `cacheMs` generous or leave it out of frequent probes.
 */
export function pythonEnvironmentComponent(options: { pythonPath?: string; required?: boolean } = {}): HealthComponent {
  return {
    required: options.required ?? false,
    check: async () => {
      const resolved = resolvePython(options.pythonPath);
      const verdict = await validatePython(resolved.path);
      const details = { path: resolved.path, source: resolved.source, version: verdict.version };
      return verdict.ok ? { status: "pass", details } : { status: "fail", reason: verdict.diagnosis, details: { ...details, fix: verdict.fix } };
    },
  };
}

/** Reports the detected hardware (cached by `detect`); always passes. */
export function hardwareComponent(): HealthComponent {
  return {
    check: async () => {
      const hardware = await detect();
      return {
        status: "pass",
        details: {
          cpu: hardware.cpu,
          memory: hardware.memory,
          cuda: hardware.cuda.map(({ index, name, memoryTotalBytes, memoryFreeBytes, computeCapability }) => ({ index, name, memoryTotalBytes, memoryFreeBytes, computeCapability })),
          rocm: hardware.rocm.length,
          mps: hardware.mps,
          identity: identity(hardware),
        },
      };
    },
  };
}
