/**
 * `select({ prefer })`: detect this machine's hardware (cached) and choose a device, falling back
 * CUDA → MPS → ROCm → CPU.
 *
 * @module
 */
import { detect } from "./detect.ts";
import { type DeviceSelection, selectDevice, type SelectOptions } from "./select.ts";

/**
 * Chooses a device on this machine: `selectDevice(await detect(), options)`.
 *
 * @example
 * ```ts
 * import { select } from "./mod.ts";
 * const device = await select({ prefer: "cuda" });
 * console.log(typeof device.backend); // string
 * ```
 */
export async function select(options: SelectOptions = {}): Promise<DeviceSelection> {
  return selectDevice(await detect(), options);
}
