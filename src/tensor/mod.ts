/**
 * Tensors and Arrow tables across the process boundary without copying.
 *
 * @module
 */
export {
  checkShape,
  type TensorData,
  type TensorDataConstructor,
  type TensorDtype,
  TENSOR_DTYPES,
} from "./dtypes.ts";
export { SharedTensor, type SharedTensorOptions, Tensor, type TensorFromOptions } from "./tensor.ts";
export { isSharedTable, releaseTable } from "./arrow.ts";
export type { DataMoved } from "./_wire.ts";
