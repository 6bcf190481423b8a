/**
 * MessagePack, the default encoding for small values, configured to interoperate with Python's
 * `msgpack` (plain maps, no records, 64-bit integers as bigint only when beyond 2^53).
 *
 * @module
 */
import { Packr } from "msgpackr";
import { SerializationError } from "../errors/pool_errors.ts";
import { checkEncodable } from "./_check_encodable.ts";

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

const RULES = { bytes: true, bigint: true, encoding: "msgpack" } as const;

/**
 * Encodes a value. Throws `SerializationError` naming the offending path.
 *
 * @param value any value made of null, booleans, numbers, bigints (64-bit), strings,
 *   `Uint8Array`, arrays, plain objects, `Map`s and `Date`s
 * @param path the value's name in error messages
 */
export function encodeValue(value: unknown, path = "value"): Uint8Array {
  checkEncodable(value, path, RULES);
  try {
    return packr.pack(value);
  } catch (cause) {
    throw new SerializationError(`Cannot encode ${path} as msgpack: ${(cause as Error).message}`, { cause, path });
  }
}

/**
 * Decodes a value. Bytes come back as plain `Uint8Array` views of `bytes` (no copy).
 *
 * @throws SerializationError when `bytes` is not valid msgpack
 */
export function decodeValue(bytes: Uint8Array): unknown {
  // Decoding from a plain Uint8Array (not a Buffer) makes embedded bytes plain Uint8Arrays too.
  const plain = Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return packr.unpack(plain);
  } catch (cause) {
    throw new SerializationError(`Cannot decode a msgpack value of ${bytes.length} bytes: ${(cause as Error).message}`, {
      cause,
    });
  }
}
