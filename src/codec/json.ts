/**
 * JSON, the debugging encoding: readable on the wire, but without bytes or big integers.
 *
 * @module
 */
import { SerializationError } from "../errors/pool_errors.ts";
import { checkEncodable } from "./_check_encodable.ts";

const RULES = { bytes: false, bigint: false, encoding: "json", tensors: false } as const;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Tokens Python's json module writes for non-finite floats, which JSON proper lacks. */
const NON_FINITE: Record<string, number> = { NaN: Number.NaN, Infinity: Infinity, "-Infinity": -Infinity };

/** Encodes a value as UTF-8 JSON, writing non-finite floats as Python does (`NaN`, `Infinity`). */
export function encodeJson(value: unknown, path = "value"): Uint8Array {
  checkEncodable(value, path, RULES);
  const marker = "\u0000snakepit-nonfinite:";
  const text = JSON.stringify(value, (_key, entry) =>
    typeof entry === "number" && !Number.isFinite(entry) ? marker + String(entry) : entry);
  const restored = (text ?? "null").replace(/"\\u0000snakepit-nonfinite:(NaN|Infinity|-Infinity)"/g, "$1");
  return encoder.encode(restored);
}

/** Decodes UTF-8 JSON, accepting Python's `NaN` / `Infinity` tokens. */
export function decodeJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch (cause) {
    throw new SerializationError("Cannot decode a JSON value: it is not valid UTF-8", { cause });
  }
  const marker = "\u0000snakepit-nonfinite:";
  const quoted = text.replace(
    /("(?:[^"\\]|\\.)*")|(-?Infinity|NaN)/g,
    (match, string: string | undefined) => string ?? JSON.stringify(marker + match),
  );
  try {
    return JSON.parse(quoted, (_key, entry) =>
      typeof entry === "string" && entry.startsWith(marker) ? NON_FINITE[entry.slice(marker.length)] : entry);
  } catch (cause) {
    throw new SerializationError(`Cannot decode a JSON value: ${(cause as Error).message}`, { cause });
  }
}
