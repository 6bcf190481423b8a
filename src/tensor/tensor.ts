/**
 * Tensors: `Tensor` holds its data in this process's memory; `SharedTensor` in a shared-memory
 * region that a Python worker maps without copying. Both can be passed anywhere inside
 * `pool.call` arguments, and both come back from tools that return numpy arrays.
 *
 * @module
 */
import { Region } from "../../ffi/region.ts";
import {
  checkDtype,
  checkShape,
  contiguousStrides,
  DTYPE_ARRAYS,
  dtypeBytes,
  dtypeOfArray,
  type TensorData,
  type TensorDtype,
} from "./dtypes.ts";

/** Options of {@link Tensor.from} and {@link SharedTensor.fromArray}. */
export interface TensorFromOptions {
  /** Default: one dimension, the array's length. */
  shape?: readonly number[];
  /** Default: the array's own type (`float16` / `bfloat16` must be named: they are `Uint16Array`). */
  dtype?: TensorDtype;
}

/** Options of {@link SharedTensor.allocate} and {@link SharedTensor.fromArray}. */
export interface SharedTensorOptions {
  /** The instance part of the region's name, `[A-Za-z0-9_]{1,20}`. Default `"snakepit"`. */
  instance?: string;
}

/**
 * An n-dimensional array in this process's memory. Small tensors returned by tools arrive as
 * this class; arguments of this class are copied to the worker.
 *
 * @example
 * ```ts
 * import { Tensor } from "@snakepit/snakepit";
 * const t = Tensor.from(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
 * console.log(t.dtype, t.shape, t.strides, t.data[4]); // float32 [ 2, 3 ] [ 3, 1 ] 5
 * ```
 */
export class Tensor implements Disposable {
  readonly dtype: TensorDtype;
  readonly shape: readonly number[];
  /** In elements, one per dimension. */
  readonly strides: readonly number[];
  /** Python receives a non-writeable array. */
  readonly readOnly: boolean;
  /** The data was copied on the way (the shared-memory path was not available). */
  readonly isCopied: boolean;
  #data: TensorData | undefined;

  /** @internal Use {@link Tensor.from} or {@link Tensor.zeros}. */
  constructor(
    data: TensorData | undefined,
    dtype: TensorDtype,
    shape: readonly number[],
    strides: readonly number[],
    flags: { readOnly?: boolean; isCopied?: boolean } = {},
  ) {
    this.#data = data;
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze([...strides]);
    this.readOnly = flags.readOnly ?? false;
    this.isCopied = flags.isCopied ?? false;
  }

  /** Wraps a typed array (no copy). */
  static from(data: ArrayBufferView, options: TensorFromOptions = {}): Tensor {
    const { dtype, shape } = resolveFrom(data, options, "Cannot make a Tensor");
    const view = new DTYPE_ARRAYS[dtype](data.buffer as ArrayBuffer, data.byteOffset, elementCount(shape));
    return new Tensor(view, dtype, shape, contiguousStrides(shape));
  }

  /** A tensor of zeros. */
  static zeros(shape: readonly number[], dtype: TensorDtype): Tensor {
    checkDtype(dtype, "Cannot make a Tensor");
    const count = checkShape(shape, "Cannot make a Tensor");
    return new Tensor(new DTYPE_ARRAYS[dtype](count), dtype, shape, contiguousStrides(shape));
  }

  /** Whether the data lives in shared memory. */
  get shared(): boolean {
    return false;
  }

  /**
   * The elements, as a typed array (no copy). Strided tensors: element `[i, j]` is at
   * `i * strides[0] + j * strides[1]`.
   *
   * @throws {TypeError} after `release()`
   */
  get data(): TensorData {
    if (this.#data === undefined) {
      throw new TypeError(`This ${this.constructor.name} (${this.dtype}${JSON.stringify(this.shape)}) was released; its data can no longer be used`);
    }
    return this.#data;
  }

  /** Elements in the tensor. */
  get size(): number {
    return elementCount(this.shape);
  }

  /** Bytes of the elements. */
  get byteLength(): number {
    return this.size * dtypeBytes(this.dtype);
  }

  /** Whether `release()` was called. */
  get released(): boolean {
    return this.#data === undefined;
  }

  /** A handle on the same data that Python receives as a non-writeable array. */
  asReadOnly(): Tensor {
    return new Tensor(this.data, this.dtype, this.shape, this.strides, { readOnly: true, isCopied: this.isCopied });
  }

  /** Drops the data; `data` throws afterwards. Idempotent. */
  release(): void {
    this.#data = undefined;
  }

  [Symbol.dispose](): void {
    this.release();
  }

  /** @internal */
  protected dropData(): void {
    this.#data = undefined;
  }
}

/**
 * A tensor in a shared-memory region: passing it to `pool.call` sends a 256-byte descriptor,
 * never the bytes, and Python receives a numpy array over the same memory. Release it (or
 * `using` it) when done; the region is unlinked when the last process holding it lets go.
 *
 * @example
 * ```ts
 * import { openNativeLibrary, SharedTensor } from "@snakepit/snakepit";
 * const library = await openNativeLibrary();
 * {
 *   using t = SharedTensor.allocate(library, [2, 2], "float64");
 *   t.data.set([1, 2, 3, 4]);
 *   console.log(t.shared, t.byteLength); // true 32
 * }
 * library.close();
 * ```
 */
export class SharedTensor extends Tensor {
  readonly #region: Region;
  readonly #owner: boolean;
  /** Where element 0 starts in the region's payload. */
  readonly byteOffset: number;
  /** The region's generation this tensor's descriptors name. */
  readonly generation: number;

  /** @internal Use {@link SharedTensor.allocate}, {@link SharedTensor.fromArray} or a pool's helpers. */
  constructor(
    region: Region,
    owner: boolean,
    dtype: TensorDtype,
    shape: readonly number[],
    strides: readonly number[],
    span: { byteOffset: number; firstByte: number; endByte: number },
    flags: { readOnly?: boolean; isCopied?: boolean } = {},
    generation?: number,
  ) {
    const Array = DTYPE_ARRAYS[dtype];
    const elements = (span.endByte - span.firstByte) / Array.BYTES_PER_ELEMENT;
    super(region.view(Array, span.firstByte, elements), dtype, shape, strides, flags);
    this.#region = region;
    this.#owner = owner;
    this.byteOffset = span.byteOffset;
    this.generation = generation ?? region.info().generation;
  }

  /**
   * A zero-filled tensor in a new region.
   *
   * @throws {TypeError | RangeError} a bad shape or dtype
   * @throws {SharedMemoryError} /dev/shm is full or a limit is reached (the message says which)
   */
  static allocate(library: unknown, shape: readonly number[], dtype: TensorDtype, options: SharedTensorOptions = {}): SharedTensor {
    checkDtype(dtype, "Cannot allocate a SharedTensor");
    const count = checkShape(shape, "Cannot allocate a SharedTensor");
    const bytes = count * dtypeBytes(dtype);
    const region = Region.create(library, { payloadBytes: Math.max(1, bytes), instance: options.instance ?? "snakepit" });
    return new SharedTensor(region, true, dtype, shape, contiguousStrides(shape), {
      byteOffset: 0,
      firstByte: 0,
      endByte: bytes,
    });
  }

  /** A new region holding a copy of `data` (the one copy in). */
  static fromArray(library: unknown, data: ArrayBufferView, options: TensorFromOptions & SharedTensorOptions = {}): SharedTensor {
    const { dtype, shape } = resolveFrom(data, options, "Cannot make a SharedTensor");
    const tensor = SharedTensor.allocate(library, shape, dtype, options);
    new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.byteLength)
      .set(new Uint8Array(data.buffer, data.byteOffset, tensor.byteLength));
    return tensor;
  }

  override get shared(): boolean {
    return true;
  }

  /** The region's name (what a descriptor names). */
  get regionName(): string {
    return this.#region.name;
  }

  /** @internal The region, for the wire codec. */
  get region(): Region {
    return this.#region;
  }

  override get released(): boolean {
    return this.#region.closed || super.released;
  }

  override asReadOnly(): SharedTensor {
    const end = this.data.byteOffset + this.data.byteLength;
    return new SharedTensor(this.#region, false, this.dtype, this.shape, this.strides, {
      byteOffset: this.byteOffset,
      firstByte: this.data.byteOffset,
      endByte: end,
    }, { readOnly: true, isCopied: this.isCopied }, this.generation);
  }

  /**
   * Gives back this process's reference (the region is unlinked when it was the last) and
   * detaches the data: views taken from `data` then have length 0 and never read freed memory.
   * Idempotent. A handle from `asReadOnly()` only drops itself.
   */
  override release(): void {
    this.dropData();
    if (this.#owner) this.#region.close();
  }
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, extent) => product * extent, 1);
}

function resolveFrom(data: ArrayBufferView, options: TensorFromOptions, what: string): { dtype: TensorDtype; shape: readonly number[] } {
  const own = dtypeOfArray(data);
  if (own === undefined) {
    throw new TypeError(`${what}: data must be a typed array (Float32Array, Int32Array, …), received ${data?.constructor?.name ?? String(data)}`);
  }
  const dtype = options.dtype === undefined ? own : checkDtype(options.dtype, what);
  const elementBytes = dtypeBytes(dtype);
  if (data.byteLength % elementBytes !== 0 || data.byteOffset % elementBytes !== 0) {
    throw new RangeError(`${what}: a ${own} array of ${data.byteLength} bytes cannot hold ${dtype} elements of ${elementBytes} bytes`);
  }
  const available = data.byteLength / elementBytes;
  const shape = options.shape ?? [available];
  const count = checkShape(shape, what);
  if (count !== available) {
    throw new RangeError(`${what}: shape ${JSON.stringify(shape)} has ${count} elements but the array holds ${available}`);
  }
  return { dtype, shape };
}
