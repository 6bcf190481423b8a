/**
 * Tensors and Arrow tables inside msgpack payloads, as four extension types that
 * `python/src/snakepit_bridge/tensors.py` reads and writes too:
 *
 * | ext | value | body (a msgpack array) |
 * | --- | --- | --- |
 * | 0x10 | tensor in shared memory | `[name, generation, descriptor (256 bytes), token (32)]` |
 * | 0x11 | tensor inline | `[dtype, shape, bytes (C order, little-endian), flags]` |
 * | 0x12 | Arrow IPC stream in shared memory | `[name, generation, descriptor (uint8, 1-D), token]` |
 * | 0x13 | Arrow IPC stream inline | `[bytes, flags]` |
 *
 * flags: bit 0 READ_ONLY, bit 1 IS_COPIED. Regions travel inside the payload, so both transports
 * (the fast lane and gRPC) carry them unchanged. An inline value of at least the chunked-copy
 * threshold names a blob (ext 0x14, `../bridge/_blobs.ts`) instead of carrying its bytes.
 *
 * @module
 */
import { addExtension, Packr } from "msgpackr";
import { type Table, tableFromIPC, tableToIPC } from "apache-arrow";
import type { NativeLibrary } from "../../ffi/native_library.ts";
import { Region } from "../../ffi/region.ts";
import { encodeDescriptor } from "../../ffi/tensor_descriptor.ts";
import { RegionAccessError } from "../errors/region_errors.ts";
import { SerializationError } from "../errors/pool_errors.ts";
import { contiguousStrides, DTYPE_ARRAYS, dtypeBytes, dtypeOfArray, isTensorDtype, type TensorDtype } from "./dtypes.ts";
import { SharedTensor, Tensor } from "./tensor.ts";
import { regionToken } from "./_token.ts";
import { isArrowTable } from "./arrow.ts";
import { currentDecodeScope, type DecodeScope } from "./_decode_scope.ts";

export { withDecodeScope } from "./_decode_scope.ts";
import type { OutboundBlob } from "../bridge/transport.ts";
import { EXT_BLOB } from "../bridge/_blobs.ts";

export const EXT_SHARED_TENSOR = 0x10;
export const EXT_INLINE_TENSOR = 0x11;
export const EXT_SHARED_ARROW = 0x12;
export const EXT_INLINE_ARROW = 0x13;
export { EXT_BLOB };
const FLAG_READ_ONLY = 1;
const FLAG_IS_COPIED = 2;

/** A pool's settings for tensors: how to map, whom to trust, when to share. */
export interface TensorPlane {
  /** The native library; undefined when it could not be loaded (everything is copied). */
  library: NativeLibrary | undefined;
  /** The pool's token secret, shared with its workers. */
  secret: Uint8Array;
  /** Arrays and tables of at least this many bytes go to shared memory. */
  thresholdBytes: number;
  /** Whether this pool and its workers map regions (false: every value is copied). */
  zeroCopy: boolean;
  /** The instance part of region names. */
  instance: string;
  /** Inline values of at least this many bytes travel as blobs beside the call, in chunks. */
  chunkedCopyThresholdBytes: number;
}

/** What one call's values moved, for telemetry. */
export interface DataMoved {
  /** `shared`: descriptors only; `inline`: small values copied by design; `copied`: values at or over the threshold copied because shared memory was unavailable; `mixed`: more than one. */
  path: "shared" | "inline" | "copied" | "mixed";
  /** Bytes of tensors and tables passed by descriptor. */
  sharedBytes: number;
  /** Bytes of tensors and tables copied into the payload (under the threshold, or shared memory unavailable). */
  inlineBytes: number;
  /** Regions named. */
  regions: number;
  /** Of `inlineBytes`, those that travelled as blobs beside the call, in chunks (values of at least `chunkedCopyThresholdBytes`). */
  chunkedBytes: number;
}

/** One call's tensor traffic: the regions it created for arguments, and what moved. */
export class CallTransfer {
  /** Made on first use: most calls carry no tensor. */
  #scratch: Region[] | undefined;
  #moved: DataMoved | undefined;
  /** Argument blobs to upload before the call; undefined when none. */
  outboundBlobs: OutboundBlob[] | undefined;
  /** Result blobs fetched for the payload being decoded. */
  inboundBlobs: Map<string, Uint8Array> | undefined;

  constructor(readonly plane: TensorPlane, readonly requestId: string) {}

  /** What the call's values moved, or undefined when it carried no tensor or table. */
  get moved(): DataMoved | undefined {
    return this.#moved;
  }

  /** @internal */
  note(kind: "shared" | "inline" | "copied", bytes: number): void {
    const moved = this.#moved ??= { path: kind, sharedBytes: 0, inlineBytes: 0, regions: 0, chunkedBytes: 0 };
    if (moved.path !== kind) moved.path = "mixed";
    if (kind === "shared") {
      moved.sharedBytes += bytes;
      moved.regions += 1;
    } else {
      moved.inlineBytes += bytes;
    }
  }

  /** @internal A region holding a copy of an argument, released with the call. */
  scratch(bytes: Uint8Array): Region {
    const region = Region.create(this.plane.library, { payloadBytes: Math.max(1, bytes.byteLength), instance: this.plane.instance });
    (this.#scratch ??= []).push(region);
    region.bytes().set(bytes);
    return region;
  }

  /** @internal */
  noteChunked(bytes: number): void {
    if (this.#moved) this.#moved.chunkedBytes += bytes;
  }

  /** @internal Keeps `bytes` as an argument blob; the reference that names it in the payload. */
  blob(bytes: Uint8Array): BlobRef {
    const blobs = this.outboundBlobs ??= [];
    const id = `${this.requestId}.${blobs.length + 1}`;
    blobs.push({ id, data: bytes });
    this.noteChunked(bytes.byteLength);
    return new BlobRef([id, bytes.byteLength]);
  }

  /** Releases the regions made for this call's arguments (the worker holds its own references while it uses them). */
  release(): void {
    const scratch = this.#scratch;
    if (scratch === undefined) return;
    this.#scratch = undefined;
    for (const region of scratch) region.close();
  }
}

class SharedRef {
  constructor(readonly type: number, readonly body: unknown[]) {}
}
class InlineTensorRef {
  constructor(readonly body: unknown[]) {}
}
class InlineArrowRef {
  constructor(readonly body: unknown[]) {}
}
class BlobRef {
  constructor(readonly body: [string, number]) {}
}
/** Blob bytes are fresh buffers of ours: decoding views them in place. */
const ownedBlobs = new WeakSet<Uint8Array>();

const inner = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, encodeUndefinedAsNil: true } as unknown as ConstructorParameters<typeof Packr>[0]);


addExtension({ Class: SharedRef, type: EXT_SHARED_TENSOR, pack: (ref: SharedRef) => inner.pack(ref.body), unpack: (bytes: Uint8Array) => scope().sharedTensor(inner.unpack(bytes)) } as never);
addExtension({ Class: InlineTensorRef, type: EXT_INLINE_TENSOR, pack: (ref: InlineTensorRef) => inner.pack(ref.body), unpack: (bytes: Uint8Array) => inlineTensor(inner.unpack(bytes)) } as never);
addExtension({ Class: InlineArrowRef, type: EXT_INLINE_ARROW, pack: (ref: InlineArrowRef) => inner.pack(ref.body), unpack: (bytes: Uint8Array) => inlineArrow(inner.unpack(bytes)) } as never);
addExtension({ Class: BlobRef, type: EXT_BLOB, pack: (ref: BlobRef) => inner.pack(ref.body), unpack: (bytes: Uint8Array) => blobBytes(inner.unpack(bytes)) } as never);
// Arrow references share the SharedRef class; msgpackr keys extensions by class, so a subclass
// carries the second type code.
class SharedArrowRef extends SharedRef {}
addExtension({ Class: SharedArrowRef, type: EXT_SHARED_ARROW, pack: (ref: SharedRef) => inner.pack(ref.body), unpack: (bytes: Uint8Array) => scope().sharedArrow(inner.unpack(bytes)) } as never);

function scope(): DecodeScope {
  const decodeScope = currentDecodeScope();
  if (decodeScope === undefined) {
    throw new RegionAccessError("A shared-memory value arrived where no pool could map it", { reason: "zero_copy_disabled" });
  }
  return decodeScope;
}

function blobBytes(body: unknown): Uint8Array {
  const [id, bytes] = Array.isArray(body) ? body : [];
  if (typeof id !== "string" || !Number.isSafeInteger(bytes)) {
    throw new SerializationError("A chunked value's blob reference is malformed (msgpack ext 0x14)");
  }
  const data = currentDecodeScope()?.transfer.inboundBlobs?.get(id);
  if (data === undefined || data.byteLength !== bytes) {
    throw new SerializationError(`A chunked value names blob ${id} (${bytes} bytes), which this result did not bring`);
  }
  ownedBlobs.add(data);
  return data;
}

/** Whether `value` is a tensor-like value this codec turns into an extension. */
export function isTensorValue(value: unknown): boolean {
  return value instanceof Tensor || (dtypeOfArray(value) !== undefined && !(value instanceof Uint8Array)) || isArrowTable(value);
}

/**
 * A copy of `value` with every tensor, typed array and Arrow table replaced by its wire form
 * (containers without any are reused as they are).
 */
export function toWire(value: unknown, transfer: CallTransfer | undefined, path: string): unknown {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Uint8Array && !(value instanceof Tensor)) return value;
  if (value instanceof Tensor) return tensorToWire(value, transfer, path);
  if (ArrayBuffer.isView(value)) return tensorToWire(Tensor.from(value), transfer, path);
  if (isArrowTable(value)) return tableToWire(value, transfer);
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let index = 0; index < value.length; index++) {
      const item = toWire(value[index], transfer, `${path}[${index}]`);
      if (item !== value[index]) (copy ??= [...value])[index] = item;
    }
    return copy ?? value;
  }
  if (value instanceof Map) {
    let copy: Map<unknown, unknown> | undefined;
    for (const [key, item] of value) {
      const wire = toWire(item, transfer, `${path}.${String(key)}`);
      if (wire !== item) (copy ??= new Map(value)).set(key, wire);
    }
    return copy ?? value;
  }
  if (value instanceof Date) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key];
    const wire = toWire(item, transfer, `${path}.${key}`);
    if (wire !== item) (copy ??= { ...value as Record<string, unknown> })[key] = wire;
  }
  return copy ?? value;
}

function tensorToWire(tensor: Tensor, transfer: CallTransfer | undefined, path: string): unknown {
  if (tensor.released) {
    throw new SerializationError(`Cannot send ${path}: the tensor was released`, { path, suggestion: "pass a live tensor" });
  }
  const plane = transfer?.plane;
  const bytes = tensor.byteLength;
  if (transfer && plane?.zeroCopy) {
    if (tensor instanceof SharedTensor) {
      transfer.note("shared", bytes);
      return sharedTensorRef(transfer, tensor.region.name, tensor.generation, tensor, tensor.byteOffset);
    }
    if (bytes >= plane.thresholdBytes) {
      const region = transfer.scratch(contiguousBytes(tensor));
      transfer.note("shared", bytes);
      const layout = { dtype: tensor.dtype, shape: tensor.shape, strides: contiguousStrides(tensor.shape), readOnly: tensor.readOnly };
      return sharedTensorRef(transfer, region.name, region.info().generation, layout, 0, true);
    }
  }
  const copied = !plane?.zeroCopy && bytes >= (plane?.thresholdBytes ?? Infinity);
  transfer?.note(copied ? "copied" : "inline", bytes);
  const flags = (tensor.readOnly ? FLAG_READ_ONLY : 0) | (copied ? FLAG_IS_COPIED : 0);
  return new InlineTensorRef([tensor.dtype, [...tensor.shape], inlineBytes(contiguousBytes(tensor), transfer), flags]);
}

function sharedTensorRef(
  transfer: CallTransfer,
  name: string,
  generation: number,
  tensor: Pick<Tensor, "dtype" | "shape" | "strides" | "readOnly">,
  byteOffset: number,
  contiguous = false,
): SharedRef {
  const isContiguous = contiguous || sameStrides(tensor.strides, contiguousStrides(tensor.shape));
  const descriptor = encodeDescriptor({
    dtype: tensor.dtype,
    shape: [...tensor.shape],
    strides: isContiguous ? undefined : [...tensor.strides],
    byteOffset,
    readOnly: tensor.readOnly,
    regionName: name,
    regionGeneration: generation,
  });
  const token = regionToken(transfer.plane.secret, "arg", transfer.requestId, name, generation, descriptor);
  return new SharedRef(EXT_SHARED_TENSOR, [name, generation, descriptor, token]);
}

function tableToWire(table: Table, transfer: CallTransfer | undefined): unknown {
  const ipc = tableToIPC(table, "stream");
  const plane = transfer?.plane;
  if (transfer && plane?.zeroCopy && ipc.byteLength >= plane.thresholdBytes) {
    const region = transfer.scratch(ipc);
    transfer.note("shared", ipc.byteLength);
    const generation = region.info().generation;
    const descriptor = encodeDescriptor({ dtype: "uint8", shape: [ipc.byteLength], regionName: region.name, regionGeneration: generation, readOnly: true });
    const token = regionToken(plane.secret, "arg", transfer.requestId, region.name, generation, descriptor);
    return new SharedArrowRef(EXT_SHARED_ARROW, [region.name, generation, descriptor, token]);
  }
  const copied = !plane?.zeroCopy && ipc.byteLength >= (plane?.thresholdBytes ?? Infinity);
  transfer?.note(copied ? "copied" : "inline", ipc.byteLength);
  return new InlineArrowRef([inlineBytes(ipc, transfer), copied ? FLAG_IS_COPIED : 0]);
}

/** `bytes` as they go into the payload, or a blob reference when they are big. */
function inlineBytes(bytes: Uint8Array, transfer: CallTransfer | undefined): Uint8Array | BlobRef {
  if (transfer === undefined || bytes.byteLength < transfer.plane.chunkedCopyThresholdBytes) return bytes;
  // The blob is read when the call is sent, after this returns: a view of the caller's array
  // would see writes made meanwhile, so it is copied, as inline bytes are.
  return transfer.blob(bytes.slice());
}

/** The tensor's elements in C order, as bytes (a view when already contiguous). */
function contiguousBytes(tensor: Tensor): Uint8Array {
  const data = tensor.data;
  if (sameStrides(tensor.strides, contiguousStrides(tensor.shape))) {
    return new Uint8Array(data.buffer, data.byteOffset, tensor.byteLength);
  }
  const out = new DTYPE_ARRAYS[tensor.dtype](tensor.size);
  const index = new Array<number>(tensor.shape.length).fill(0);
  for (let flat = 0; flat < tensor.size; flat++) {
    let source = 0;
    for (let axis = 0; axis < index.length; axis++) source += index[axis] * tensor.strides[axis];
    (out as unknown as number[])[flat] = (data as unknown as number[])[source];
    for (let axis = index.length - 1; axis >= 0; axis--) {
      if (++index[axis] < tensor.shape[axis]) break;
      index[axis] = 0;
    }
  }
  return new Uint8Array(out.buffer);
}

function sameStrides(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}

/** Records a decoded inline value in the call's telemetry. */
function noteInline(bytes: Uint8Array, copied: boolean): void {
  const transfer = currentDecodeScope()?.transfer;
  if (transfer === undefined) return;
  transfer.note(copied ? "copied" : "inline", bytes.byteLength);
  if (ownedBlobs.has(bytes)) transfer.noteChunked(bytes.byteLength);
}

function inlineTensor(body: unknown): Tensor {
  const [dtype, shape, bytes, flags] = Array.isArray(body) ? body : [];
  if (!isTensorDtype(dtype) || !Array.isArray(shape) || !(bytes instanceof Uint8Array) || typeof flags !== "number") {
    throw new SerializationError("An inline tensor in the payload is malformed");
  }
  const count = shape.reduce((product: number, extent: number) => product * extent, 1);
  if (count * dtypeBytes(dtype as TensorDtype) !== bytes.byteLength) {
    throw new SerializationError(`An inline ${dtype} tensor of shape ${JSON.stringify(shape)} carries ${bytes.byteLength} bytes`);
  }
  // A copy: the payload's bytes are neither aligned for wider elements nor ours to keep (a
  // blob's are both).
  noteInline(bytes, (flags & FLAG_IS_COPIED) !== 0);
  const aligned = ownedBlobs.has(bytes) ? bytes : bytes.slice();
  const data = new DTYPE_ARRAYS[dtype as TensorDtype](aligned.buffer as ArrayBuffer, aligned.byteOffset, count);
  return new Tensor(data, dtype as TensorDtype, shape, contiguousStrides(shape), {
    readOnly: (flags & FLAG_READ_ONLY) !== 0,
    isCopied: (flags & FLAG_IS_COPIED) !== 0,
  });
}

function inlineArrow(body: unknown): Table {
  const [bytes, flags] = Array.isArray(body) ? body : [];
  if (!(bytes instanceof Uint8Array)) throw new SerializationError("An inline Arrow table in the payload is malformed");
  noteInline(bytes, ((flags as number) & FLAG_IS_COPIED) !== 0);
  try {
    return tableFromIPC(ownedBlobs.has(bytes) ? bytes : bytes.slice());
  } catch (cause) {
    throw new SerializationError(`Cannot read an inline Arrow table: ${(cause as Error).message}`, { cause });
  }
}
