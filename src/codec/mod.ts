/**
 * Encodings of small values on the wire.
 *
 * @module
 */
import { decodeJson, encodeJson } from "./json.ts";
import { decodeValue, encodeValue } from "./msgpack.ts";
import { SerializationError } from "../errors/pool_errors.ts";
import type { CallTransfer } from "../tensor/_wire.ts";

/** The encodings a call can use. `msgpack` is the default; `json` is for debugging. */
export type Encoding = "msgpack" | "json";

/** Wire numbers of the proto's `Encoding` enum. */
export const WIRE_ENCODING: Record<Encoding, number> = { msgpack: 1, json: 2 };

/** Encodes `value` in `encoding`. Throws `SerializationError` naming the offending path. */
export function encodePayload(value: unknown, encoding: Encoding, path: string, transfer?: CallTransfer): Uint8Array {
  return encoding === "json" ? encodeJson(value, path) : encodeValue(value, path, transfer);
}

/** Decodes a payload by its wire encoding number. */
export function decodePayload(data: Uint8Array, wireEncoding: number | string, transfer?: CallTransfer): unknown {
  if (wireEncoding === 1 || wireEncoding === "ENCODING_MSGPACK" || wireEncoding === 0 || wireEncoding === "ENCODING_UNSPECIFIED") {
    return decodeValue(data, transfer);
  }
  if (wireEncoding === 2 || wireEncoding === "ENCODING_JSON") return decodeJson(data);
  throw new SerializationError(`Cannot decode a payload in encoding ${String(wireEncoding)}; this host knows msgpack and json`);
}

export { decodeJson, decodeValue, encodeJson, encodeValue };
