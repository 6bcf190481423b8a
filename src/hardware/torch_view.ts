/**
 * What PyTorch sees from Python: asks the workers' interpreter, so a mismatch with `detect()`
 * (a CPU-only torch wheel on a GPU machine, a hidden device) shows up before a worker trips on it.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { resolvePython } from "../python_env/resolve.ts";

/** PyTorch's view of the devices, or that it is not installed. */
export type TorchView =
  | { installed: false }
  | {
    installed: true;
    version: string;
    /** The CUDA (or HIP) version torch was built with; null for CPU-only builds. */
    builtWithCuda: string | null;
    cudaAvailable: boolean;
    devices: Array<{ index: number; name: string; memoryTotalBytes: number; computeCapability: string }>;
    mpsAvailable: boolean;
  };

const PROBE = `
import json
try:
    import torch
except Exception:
    print(json.dumps({"installed": False}))
    raise SystemExit(0)
available = torch.cuda.is_available()
devices = []
for index in range(torch.cuda.device_count() if available else 0):
    p = torch.cuda.get_device_properties(index)
    devices.append({"index": index, "name": p.name, "memoryTotalBytes": p.total_memory,
                    "computeCapability": f"{p.major}.{p.minor}"})
mps = getattr(torch.backends, "mps", None)
print(json.dumps({"installed": True, "version": torch.__version__,
                  "builtWithCuda": torch.version.cuda or getattr(torch.version, "hip", None),
                  "cudaAvailable": available, "devices": devices,
                  "mpsAvailable": bool(mps and mps.is_available())}))
`;

/**
 * Runs the interpreter (default: `resolvePython()`'s) and reports what torch sees.
 *
 * @throws Error when the interpreter does not run or answers nonsense
 * @example
 * ```ts
 * const view = await torchView();
 * if (view.installed && !view.cudaAvailable) console.warn("torch sees no GPU");
 * ```
 */
export function torchView(pythonPath?: string, timeoutMs = 60_000): Promise<TorchView> {
  return new Promise((resolve, reject) => {
    const python = resolvePython(pythonPath).path; // Throwing here rejects the promise.
    execFile(python, ["-c", PROBE], { encoding: "utf8", timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`Cannot ask torch: ${python} failed: ${stderr.trim() || error.message}`, { cause: error }));
      try {
        resolve(JSON.parse(stdout.trim().split("\n").at(-1) ?? ""));
      } catch (cause) {
        reject(new Error(`Cannot ask torch: ${python} printed ${JSON.stringify(stdout.slice(0, 200))}`, { cause }));
      }
    });
  });
}
