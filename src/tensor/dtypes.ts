/**
 * Tensor element types and the typed arrays that hold them. float16 and bfloat16 are raw 16-bit
 * storage (`Uint16Array`); bool is one byte per element (`Uint8Array`, 0 or 1).
 *
 * @module
 */

/** The element types a tensor can have (the descriptor's names, as numpy spells them). */
export type TensorDtype =
  | "float16"
  | "bfloat16"
  | "float32"
  | "float64"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "bool";

/** A typed array a tensor's data can be. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

/** A constructor of one of the {@link TensorData} arrays. */
export interface TensorDataConstructor {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): TensorData;
  new (length: number): TensorData;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
}

/** dtype -> the typed array that holds it. */
export const DTYPE_ARRAYS: Readonly<Record<TensorDtype, TensorDataConstructor>> = {
  float16: Uint16Array,
  bfloat16: Uint16Array,
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
} as unknown as Record<TensorDtype, TensorDataConstructor>;

/** Every dtype name. */
export const TENSOR_DTYPES = Object.keys(DTYPE_ARRAYS) as readonly TensorDtype[];

/** Bytes per element of `dtype`. */
export function dtypeBytes(dtype: TensorDtype): number {
  return DTYPE_ARRAYS[dtype].BYTES_PER_ELEMENT;
}

/** Whether `value` names a dtype. */
export function isTensorDtype(value: unknown): value is TensorDtype {
  return typeof value === "string" && Object.hasOwn(DTYPE_ARRAYS, value);
}

const ARRAY_DTYPES = new Map<unknown, TensorDtype>([
  [Float32Array, "float32"],
  [Float64Array, "float64"],
  [Int8Array, "int8"],
  [Int16Array, "int16"],
  [Int32Array, "int32"],
  [BigInt64Array, "int64"],
  [Uint8Array, "uint8"],
  [Uint8ClampedArray, "uint8"],
  [Uint16Array, "uint16"],
  [Uint32Array, "uint32"],
  [BigUint64Array, "uint64"],
]);

/** The dtype a typed array holds by default, or undefined for anything else (a Buffer is uint8). */
export function dtypeOfArray(value: unknown): TensorDtype | undefined {
  if (!ArrayBuffer.isView(value) || value instanceof DataView) return undefined;
  let prototype = Object.getPrototypeOf(value);
  while (prototype !== null) {
    const dtype = ARRAY_DTYPES.get(prototype.constructor);
    if (dtype !== undefined) return dtype;
    prototype = Object.getPrototypeOf(prototype);
  }
  return undefined;
}

/**
 * Checks a shape (0 to 8 safe non-negative integers) and returns its element count.
 *
 * @throws {TypeError | RangeError} naming `what` and the value received
 */
export function checkShape(shape: unknown, what: string): number {
  if (!Array.isArray(shape)) {
    throw new TypeError(`${what}: shape must be an array of integers, received ${describe(shape)}`);
  }
  if (shape.length > 8) {
    throw new RangeError(`${what}: shape has ${shape.length} dimensions; at most 8 are supported`);
  }
  let count = 1;
  for (const [index, extent] of shape.entries()) {
    if (!Number.isSafeInteger(extent) || extent < 0) {
      throw new RangeError(`${what}: shape[${index}] must be an integer >= 0, received ${describe(extent)}`);
    }
    count *= extent;
  }
  if (!Number.isSafeInteger(count)) throw new RangeError(`${what}: shape ${JSON.stringify(shape)} has too many elements`);
  return count;
}

/** C-contiguous strides, in elements, of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let index = shape.length - 1; index >= 0; index--) {
    strides[index] = step;
    step *= Math.max(1, shape[index]);
  }
  return strides;
}

/**
 * @throws {TypeError} when `dtype` is not a dtype name
 */
export function checkDtype(dtype: unknown, what: string): TensorDtype {
  if (!isTensorDtype(dtype)) {
    throw new TypeError(`${what}: dtype must be one of ${TENSOR_DTYPES.join(", ")}, received ${describe(dtype)}`);
  }
  return dtype;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (Array.isArray(value)) return `[${value.map(describe).join(", ")}]`;
  return String(value);
}
