/**
 * MessagePack, the default encoding for small values, configured to interoperate with Python's
 * `msgpack` (plain maps, no records, 64-bit integers as bigint only when beyond 2^53).
 *
 * @module
 */
import { Packr } from "msgpackr";
import { SerializationError } from "../errors/pool_errors.ts";
import { SnakepitError } from "../errors/snakepit_error.ts";
import { checkEncodable } from "./_check_encodable.ts";
import { type CallTransfer, toWire, withDecodeScope } from "../tensor/_wire.ts";

const packr = new Packr({
  // Records are a msgpackr extension Python does not know; plain maps interoperate.
  useRecords: false,
  moreTypes: false,
  encodeUndefinedAsNil: true,
  mapsAsObjects: true,
  // Integers within 2^53 decode as numbers, larger ones as bigint, so nothing loses precision.
  // ("auto" works at run time but is missing from msgpackr's type declarations.)
  int64AsType: "auto",
} as unknown as ConstructorParameters<typeof Packr>[0]);

const RULES = { bytes: true, bigint: true, encoding: "msgpack", tensors: true } as const;
const MSGPACK_EMPTY_MAP = 0x80;
const MSGPACK_NIL = 0xc0;
const MSGPACK_FALSE = 0xc2;
const MSGPACK_TRUE = 0xc3;

/** `{}` (or an object without a prototype and without keys): encodes as an empty map. */
export function isEmptyPlainObject(value: unknown): boolean {
  if (value === null || typeof value !== "object") return false;
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  for (const _ in value) return false;
  return true;
}

/**
 * Encodes a value. Throws `SerializationError` naming the offending path.
 *
 * @param value any value made of null, booleans, numbers, bigints (64-bit), strings,
 *   `Uint8Array`, arrays, plain objects, `Map`s and `Date`s
 * @param path the value's name in error messages
 * @param transfer the call's tensor settings: with it, tensors, typed arrays and Arrow tables at
 *   or over the threshold travel in shared memory; without it, they are copied inline
 */
export function encodeValue(value: unknown, path = "value", transfer?: CallTransfer): Uint8Array {
  // No arguments (`{}`), the commonest payload of all: one byte, no walk, no encoder.
  if (isEmptyPlainObject(value)) return Uint8Array.of(MSGPACK_EMPTY_MAP);
  const wire = checkEncodable(value, path, RULES) ? toWire(value, transfer, path) : value;
  try {
    return packr.pack(wire);
  } catch (cause) {
    throw new SerializationError(`Cannot encode ${path} as msgpack: ${(cause as Error).message}`, { cause, path });
  }
}

/**
 * Decodes a value. Bytes come back as plain `Uint8Array` views of `bytes` (no copy). With a
 * `transfer`, shared-memory tensors and tables a worker returned are verified and adopted.
 *
 * @throws SerializationError when `bytes` is not valid msgpack
 * @throws RegionAccessError when a shared-memory value is refused
 */
export function decodeValue(bytes: Uint8Array, transfer?: CallTransfer): unknown {
  if (bytes.length === 1) {
    // A one-byte value (None, a bool, a small int: what most tools run for effect return)
    // needs neither a decoder nor a decode scope.
    const byte = bytes[0]!;
    if (byte <= 0x7f) return byte;
    if (byte >= 0xe0) return byte - 0x100;
    if (byte === MSGPACK_NIL) return null;
    if (byte === MSGPACK_FALSE) return false;
    if (byte === MSGPACK_TRUE) return true;
  }
  // Decoding from a plain Uint8Array (not a Buffer) makes embedded bytes plain Uint8Arrays too.
  const plain = Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return transfer === undefined ? packr.unpack(plain) : withDecodeScope(transfer, "result", () => packr.unpack(plain));
  } catch (cause) {
    if (cause instanceof SnakepitError) throw cause;
    throw new SerializationError(`Cannot decode a msgpack value of ${bytes.length} bytes: ${(cause as Error).message}`, {
      cause,
    });
  }
}
