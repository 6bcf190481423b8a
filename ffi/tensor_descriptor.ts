/**
 * Tensor descriptors: the DLPack 1.x field set pointing into a shared-memory region, as the 256
 * little-endian bytes `zig/dlpack.zig` defines. Encoding and decoding are plain TypeScript (they
 * also run where the native library is not loaded); proving that a descriptor fits a region is
 * the library's job (`validateDescriptor`, `Region.checkDescriptor`).
 *
 * The Python twin (`snakepit_bridge.native_descriptor`) writes the same bytes for the same
 * descriptor; tests/native_descriptor.test.ts checks both against the library.
 *
 * @module
 */
import { nativeAccess } from "./_native_access.ts";
import { errorFromStatus, SharedMemoryError } from "./shared_memory_error.ts";
import { NativeStatus, type NativeStatusName } from "./symbols.ts";
import { REGION_NAME_PATTERN } from "./region.ts";

/** The dtypes a descriptor can carry, with their DLPack (code, bits). */
export const DTYPES = {
  int8: [0, 8],
  int16: [0, 16],
  int32: [0, 32],
  int64: [0, 64],
  uint8: [1, 8],
  uint16: [1, 16],
  uint32: [1, 32],
  uint64: [1, 64],
  float16: [2, 16],
  float32: [2, 32],
  float64: [2, 64],
  bfloat16: [4, 16],
  complex64: [5, 64],
  complex128: [5, 128],
  bool: [6, 8],
} as const satisfies Record<string, readonly [code: number, bits: number]>;

/** A dtype name. */
export type DtypeName = keyof typeof DTYPES;

/** The encoded layout, mirrored from `zig/dlpack.zig`: field -> [offset, bytes]. */
export const DESCRIPTOR_FIELDS = {
  magic: [0, 4],
  format_version: [4, 2],
  encoded_bytes: [6, 2],
  dlpack_major: [8, 4],
  dlpack_minor: [12, 4],
  device_type: [16, 4],
  device_id: [20, 4],
  dtype_code: [24, 1],
  dtype_bits: [25, 1],
  dtype_lanes: [26, 2],
  ndim: [28, 4],
  flags: [32, 8],
  byte_offset: [40, 8],
  region_generation: [48, 8],
  strides_present: [56, 1],
  region_name_bytes: [57, 1],
  reserved: [58, 6],
  shape: [64, 64],
  strides: [128, 64],
  region_name: [192, 64],
} as const satisfies Record<string, readonly [number, number]>;

export const DESCRIPTOR_BYTES = 256;
export const DESCRIPTOR_MAGIC = 0x4c44_5053;
export const DESCRIPTOR_FORMAT_VERSION = 1;
export const DESCRIPTOR_NDIM_MAX = 8;
const DLPACK_MAJOR = 1;
const DLPACK_MINOR = 1;
const DEVICE_CPU = 1;
const FLAG_READ_ONLY = 1n;
const FLAG_IS_COPIED = 2n;

/** A tensor in a shared-memory region. */
export interface TensorDescriptor {
  dtype: DtypeName;
  /** Extents, 0 to 8 of them, each a safe integer >= 0. */
  shape: number[];
  /** In elements, one per dimension; absent means C-contiguous. */
  strides?: number[];
  /** Where element 0 starts in the payload. Default 0. */
  byteOffset?: number;
  /** DLPack READ_ONLY: consumers must not write. Default false. */
  readOnly?: boolean;
  /** DLPack IS_COPIED: the producer copied the data here. Default false. */
  isCopied?: boolean;
  regionName: string;
  regionGeneration: number;
  /** DLPack minor version (major is 1). Default 1. */
  dlpackMinor?: number;
}

const fieldOffset = (name: keyof typeof DESCRIPTOR_FIELDS) => DESCRIPTOR_FIELDS[name][0];
const encoder = new TextEncoder();

function invalid(status: NativeStatusName, message: string): SharedMemoryError {
  return new SharedMemoryError(`Cannot decode a tensor descriptor: ${message} [${status}].`, {
    op: "decodeDescriptor",
    status: NativeStatus[status],
    statusName: status,
    path: "",
  });
}

function checkSafe(value: number, what: string, minimum = 0): void {
  if (!Number.isSafeInteger(value) || value < minimum) {
    throw new RangeError(
      `Cannot encode a tensor descriptor: ${what} must be a safe integer >= ${minimum}, received ${value}`,
    );
  }
}

/**
 * Encodes a descriptor to its 256 canonical bytes.
 *
 * @throws {TypeError | RangeError} A field of the wrong type or out of range.
 */
export function encodeDescriptor(descriptor: TensorDescriptor): Uint8Array {
  const dtype = DTYPES[descriptor.dtype];
  if (dtype === undefined) {
    throw new RangeError(`Cannot encode a tensor descriptor: unknown dtype ${descriptor.dtype}`);
  }
  const {
    shape,
    strides,
    byteOffset = 0,
    regionName,
    regionGeneration,
    dlpackMinor = DLPACK_MINOR,
  } = descriptor;
  if (!Array.isArray(shape) || shape.length > DESCRIPTOR_NDIM_MAX) {
    throw new RangeError(
      `Cannot encode a tensor descriptor: shape must be an array of at most ${DESCRIPTOR_NDIM_MAX} extents`,
    );
  }
  shape.forEach((extent, index) => checkSafe(extent, `shape[${index}]`));
  if (strides !== undefined) {
    if (!Array.isArray(strides) || strides.length !== shape.length) {
      throw new RangeError(
        "Cannot encode a tensor descriptor: strides must have one entry per dimension",
      );
    }
    strides.forEach((stride, index) =>
      checkSafe(stride, `strides[${index}]`, Number.MIN_SAFE_INTEGER)
    );
  }
  checkSafe(byteOffset, "byteOffset");
  checkSafe(regionGeneration, "regionGeneration", 1);
  checkSafe(dlpackMinor, "dlpackMinor");
  if (typeof regionName !== "string" || !REGION_NAME_PATTERN.test(regionName)) {
    throw new RangeError(
      `Cannot encode a tensor descriptor: regionName must match ${REGION_NAME_PATTERN}`,
    );
  }
  const bytes = new Uint8Array(DESCRIPTOR_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(fieldOffset("magic"), DESCRIPTOR_MAGIC, true);
  view.setUint16(fieldOffset("format_version"), DESCRIPTOR_FORMAT_VERSION, true);
  view.setUint16(fieldOffset("encoded_bytes"), DESCRIPTOR_BYTES, true);
  view.setUint32(fieldOffset("dlpack_major"), DLPACK_MAJOR, true);
  view.setUint32(fieldOffset("dlpack_minor"), dlpackMinor, true);
  view.setInt32(fieldOffset("device_type"), DEVICE_CPU, true);
  view.setUint8(fieldOffset("dtype_code"), dtype[0]);
  view.setUint8(fieldOffset("dtype_bits"), dtype[1]);
  view.setUint16(fieldOffset("dtype_lanes"), 1, true);
  view.setUint32(fieldOffset("ndim"), shape.length, true);
  const flags = (descriptor.readOnly ? FLAG_READ_ONLY : 0n) |
    (descriptor.isCopied ? FLAG_IS_COPIED : 0n);
  view.setBigUint64(fieldOffset("flags"), flags, true);
  view.setBigUint64(fieldOffset("byte_offset"), BigInt(byteOffset), true);
  view.setBigUint64(fieldOffset("region_generation"), BigInt(regionGeneration), true);
  view.setUint8(fieldOffset("strides_present"), strides === undefined ? 0 : 1);
  const name = encoder.encode(regionName);
  view.setUint8(fieldOffset("region_name_bytes"), name.byteLength);
  shape.forEach((extent, index) =>
    view.setBigInt64(fieldOffset("shape") + index * 8, BigInt(extent), true)
  );
  strides?.forEach((stride, index) =>
    view.setBigInt64(fieldOffset("strides") + index * 8, BigInt(stride), true)
  );
  bytes.set(name, fieldOffset("region_name"));
  return bytes;
}

const DTYPE_BY_CODE_BITS = new Map<string, DtypeName>(
  Object.entries(DTYPES).map(([name, [code, bits]]) => [`${code}/${bits}`, name as DtypeName]),
);

/**
 * Decodes the canonical 256 bytes of a descriptor. Applies the library's structural checks in
 * the library's order, so both report the same status for the same bytes.
 *
 * @throws {SharedMemoryError} descriptor_malformed, unsupported_dtype, unsupported_device, and
 *   descriptor_overflow for values past JavaScript's safe integers.
 */
export function decodeDescriptor(bytes: Uint8Array): TensorDescriptor {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("Cannot decode a tensor descriptor: bytes must be a Uint8Array");
  }
  if (bytes.byteLength !== DESCRIPTOR_BYTES) {
    throw invalid(
      "descriptor_malformed",
      `it must be ${DESCRIPTOR_BYTES} bytes, received ${bytes.byteLength}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (field: keyof typeof DESCRIPTOR_FIELDS) => view.getUint32(fieldOffset(field), true);
  const u16 = (field: keyof typeof DESCRIPTOR_FIELDS) => view.getUint16(fieldOffset(field), true);
  const u8 = (field: keyof typeof DESCRIPTOR_FIELDS) => view.getUint8(fieldOffset(field));
  if (u32("magic") !== DESCRIPTOR_MAGIC) throw invalid("descriptor_malformed", "wrong magic");
  if (u16("format_version") !== DESCRIPTOR_FORMAT_VERSION) {
    throw invalid("descriptor_malformed", "unknown format version");
  }
  if (u16("encoded_bytes") !== DESCRIPTOR_BYTES) {
    throw invalid("descriptor_malformed", "wrong encoded length");
  }
  if (u32("dlpack_major") !== DLPACK_MAJOR) {
    throw invalid("descriptor_malformed", "unsupported DLPack major version");
  }
  if (
    view.getInt32(fieldOffset("device_type"), true) !== DEVICE_CPU ||
    view.getInt32(fieldOffset("device_id"), true) !== 0
  ) {
    throw invalid("unsupported_device", "the device is not CPU 0");
  }
  const dtype = DTYPE_BY_CODE_BITS.get(`${u8("dtype_code")}/${u8("dtype_bits")}`);
  if (u16("dtype_lanes") !== 1 || dtype === undefined) {
    throw invalid(
      "unsupported_dtype",
      `code ${u8("dtype_code")}, bits ${u8("dtype_bits")}, lanes ${u16("dtype_lanes")}`,
    );
  }
  const ndim = u32("ndim");
  if (ndim > DESCRIPTOR_NDIM_MAX) {
    throw invalid("descriptor_malformed", `ndim ${ndim} exceeds ${DESCRIPTOR_NDIM_MAX}`);
  }
  const flags = view.getBigUint64(fieldOffset("flags"), true);
  if ((flags & ~(FLAG_READ_ONLY | FLAG_IS_COPIED)) !== 0n) {
    throw invalid("descriptor_malformed", "unknown flags");
  }
  if (
    bytes.subarray(fieldOffset("reserved"), fieldOffset("reserved") + 6).some((byte) => byte !== 0)
  ) {
    throw invalid("descriptor_malformed", "reserved bytes are not zero");
  }
  const stridesPresent = u8("strides_present");
  if (stridesPresent > 1) throw invalid("descriptor_malformed", "strides_present is not 0 or 1");
  const regionName = decodeName(bytes, u8("region_name_bytes"));
  const generation = view.getBigUint64(fieldOffset("region_generation"), true);
  if (generation === 0n) throw invalid("descriptor_malformed", "generation 0");
  const shape: bigint[] = [];
  const strides: bigint[] = [];
  for (let dimension = 0; dimension < DESCRIPTOR_NDIM_MAX; dimension += 1) {
    const extent = view.getBigInt64(fieldOffset("shape") + dimension * 8, true);
    const stride = view.getBigInt64(fieldOffset("strides") + dimension * 8, true);
    const used = dimension < ndim;
    if (extent < 0n || (!used && extent !== 0n)) {
      throw invalid("descriptor_malformed", `bad extent in dimension ${dimension}`);
    }
    if ((!used || stridesPresent === 0) && stride !== 0n) {
      throw invalid("descriptor_malformed", `stray stride in dimension ${dimension}`);
    }
    if (used) {
      shape.push(extent);
      strides.push(stride);
    }
  }
  const descriptor: TensorDescriptor = {
    dtype,
    shape: shape.map((extent) => safe(extent, "an extent")),
    byteOffset: safe(view.getBigUint64(fieldOffset("byte_offset"), true), "the byte offset"),
    readOnly: (flags & FLAG_READ_ONLY) !== 0n,
    isCopied: (flags & FLAG_IS_COPIED) !== 0n,
    regionName,
    regionGeneration: safe(generation, "the generation"),
    dlpackMinor: u32("dlpack_minor"),
  };
  if (stridesPresent === 1) descriptor.strides = strides.map((stride) => safe(stride, "a stride"));
  return descriptor;
}

function decodeName(bytes: Uint8Array, length: number): string {
  const start = fieldOffset("region_name");
  const field = bytes.subarray(start, start + DESCRIPTOR_FIELDS.region_name[1]);
  if (length === 0 || length > 63 || field.subarray(length).some((byte) => byte !== 0)) {
    throw invalid("descriptor_malformed", "bad region name length");
  }
  const name = new TextDecoder().decode(field.subarray(0, length));
  if (!REGION_NAME_PATTERN.test(name)) throw invalid("descriptor_malformed", "bad region name");
  return name;
}

function safe(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw invalid("descriptor_overflow", `${what} exceeds JavaScript's safe integers`);
  }
  return Number(value);
}

/**
 * Asks the library to prove that the descriptor's elements all lie within a payload of
 * `payloadBytes` bytes (overflow-checked), that its dtype is supported and its offset aligned.
 * Returns the payload bytes the elements cover.
 *
 * @throws {SharedMemoryError} descriptor_* statuses, unsupported_dtype, unsupported_device.
 */
export function validateDescriptor(
  library: unknown,
  bytes: Uint8Array,
  payloadBytes: number,
): { firstByte: number; endByte: number } {
  const access = nativeAccess(library, "validate a descriptor");
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("Cannot validate a descriptor: bytes must be a Uint8Array");
  }
  if (!Number.isSafeInteger(payloadBytes) || payloadBytes < 0) {
    throw new RangeError(
      `Cannot validate a descriptor: payloadBytes must be a safe integer >= 0, received ${payloadBytes}`,
    );
  }
  const extent = new BigUint64Array(2);
  const status = access.bindings("validateDescriptor").functions.snakepit_descriptor_validate(
    bytes.byteLength === 0 ? null : bytes,
    bytes.byteLength,
    BigInt(payloadBytes),
    extent,
  );
  if (status !== NativeStatus.ok) {
    throw errorFromStatus({
      op: "validateDescriptor",
      status,
      path: access.path,
      what: "Invalid tensor descriptor",
    });
  }
  return { firstByte: Number(extent[0]), endByte: Number(extent[1]) };
}

/**
 * The library's canonical re-encoding of `bytes` (parse, then serialize): equal to `bytes` for
 * every descriptor the library accepts.
 *
 * @throws {SharedMemoryError} The parse statuses of {@link validateDescriptor}.
 */
export function normalizeDescriptor(library: unknown, bytes: Uint8Array): Uint8Array {
  const access = nativeAccess(library, "normalize a descriptor");
  const output = new Uint8Array(DESCRIPTOR_BYTES);
  const length = new Uint32Array(1);
  const status = access.bindings("normalizeDescriptor").functions.snakepit_descriptor_normalize(
    bytes.byteLength === 0 ? null : bytes,
    bytes.byteLength,
    output,
    output.byteLength,
    length,
  );
  if (status !== NativeStatus.ok) {
    throw errorFromStatus({
      op: "normalizeDescriptor",
      status,
      path: access.path,
      what: "Invalid tensor descriptor",
    });
  }
  return output.subarray(0, length[0]);
}
