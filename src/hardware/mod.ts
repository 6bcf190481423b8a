/**
 * Hardware detection and device selection.
 *
 * @example
 * ```ts
 * import { detect, identity, selectDevice } from "@snakepit/snakepit";
 *
 * const hardware = await detect();
 * console.log(identity(hardware).summary);
 * console.log(selectDevice(hardware, { prefer: "cuda" }).device); // "cpu" on a machine without a GPU
 * ```
 *
 * @module
 */
export {
  type Capabilities,
  capabilities,
  type CpuInfo,
  type CudaDevice,
  detect,
  type DetectOptions,
  type Hardware,
  type HardwareIdentity,
  identity,
  type MemoryInfo,
  type RocmDevice,
} from "./detect.ts";
export { type Backend, type DeviceSelection, selectDevice, type SelectOptions } from "./select.ts";
export { select } from "./select_detected.ts";
export { type TorchView, torchView } from "./torch_view.ts";
