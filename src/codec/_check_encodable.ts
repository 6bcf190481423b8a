/**
 * Walks a value before it is encoded, so that what msgpack would silently mangle (functions,
 * symbols, typed arrays other than bytes, cycles) is refused with the path to the culprit.
 *
 * @module
 */
import { SerializationError } from "../errors/pool_errors.ts";
import { isTensorValue } from "../tensor/_wire.ts";

/** Nesting deeper than this is refused (it is almost always a cycle). */
export const NESTING_DEPTH_MAX = 64;
/** Arrays and maps with more entries than this are refused; use shared memory for bulk data. */
export const CONTAINER_ENTRIES_MAX = 1_000_000;

/** What the target encoding can carry. */
export interface EncodableRules {
  /** JSON cannot carry bytes or bigints; msgpack can. */
  bytes: boolean;
  bigint: boolean;
  encoding: string;
  /** Tensors, typed arrays and Arrow tables: msgpack carries them as extensions; JSON refuses them. */
  tensors: boolean;
}

/**
 * Throws `SerializationError` naming the path of the first value the encoding cannot carry.
 * Returns whether the value holds tensors, typed arrays or Arrow tables (msgpack extensions).
 *
 * @param value the value to check
 * @param path the name of the value for messages, e.g. `args`
 * @param rules what the encoding supports
 */
export function checkEncodable(value: unknown, path: string, rules: EncodableRules): boolean {
  let tensors = false;
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value, path, depth: 0 }];
  let visited = 0;
  while (stack.length > 0) {
    const item = stack.pop()!;
    visited += 1;
    if (visited > CONTAINER_ENTRIES_MAX) {
      throw refuse(path, `has more than ${CONTAINER_ENTRIES_MAX} values`, rules, "pass bulk data as bytes");
    }
    const current = item.value;
    switch (typeof current) {
      case "string":
      case "number":
      case "boolean":
      case "undefined":
        continue;
      case "bigint":
        if (!rules.bigint) throw refuse(item.path, "is a bigint", rules, "use the msgpack encoding");
        if (current > 0xffff_ffff_ffff_ffffn || current < -0x8000_0000_0000_0000n) {
          throw refuse(item.path, `is ${current}, outside the 64-bit integer range`, rules, "pass it as a string");
        }
        continue;
      case "function":
        throw refuse(item.path, "is a function", rules, "pass data, not code");
      case "symbol":
        throw refuse(item.path, "is a symbol", rules, "pass a string instead");
    }
    if (current === null || current instanceof Date) continue;
    if (item.depth >= NESTING_DEPTH_MAX) {
      throw refuse(item.path, `is nested deeper than ${NESTING_DEPTH_MAX} levels (a cycle?)`, rules, "flatten it");
    }
    if (current instanceof Uint8Array) {
      if (!rules.bytes) throw refuse(item.path, "is bytes", rules, "use the msgpack encoding");
      continue;
    }
    // Tensors, typed arrays and Arrow tables are never plain objects or arrays, so plain values
    // pay nothing for this check.
    if (!Array.isArray(current) && Object.getPrototypeOf(current) !== Object.prototype && isTensorValue(current)) {
      if (!rules.tensors) {
        throw refuse(item.path, `is a ${(current as object).constructor.name}`, rules, "use the msgpack encoding (the default) for tensors and tables");
      }
      tensors = true;
      continue;
    }
    if (ArrayBuffer.isView(current) || current instanceof ArrayBuffer) {
      const type = (current as object).constructor.name;
      throw refuse(
        item.path,
        `is a ${type}, which would lose its element type`,
        rules,
        "pass new Uint8Array(view.buffer, view.byteOffset, view.byteLength) and rebuild it in Python",
      );
    }
    const depth = item.depth + 1;
    if (Array.isArray(current)) {
      if (current.length > CONTAINER_ENTRIES_MAX) {
        throw refuse(item.path, `has ${current.length} items`, rules, "pass bulk data as bytes");
      }
      for (let index = current.length - 1; index >= 0; index--) {
        stack.push({ value: current[index], path: `${item.path}[${index}]`, depth });
      }
    } else if (current instanceof Map) {
      for (const [key, entry] of current) stack.push({ value: entry, path: `${item.path}.get(${String(key)})`, depth });
    } else if (current instanceof Set) {
      let index = 0;
      for (const entry of current) stack.push({ value: entry, path: `${item.path}[${index++}]`, depth });
    } else {
      const prototype = Object.getPrototypeOf(current);
      if (prototype !== Object.prototype && prototype !== null) {
        throw refuse(
          item.path,
          `is an instance of ${(current as object).constructor?.name ?? "a class"}`,
          rules,
          "pass a plain object",
        );
      }
      for (const key of Object.keys(current as object)) {
        stack.push({ value: (current as Record<string, unknown>)[key], path: `${item.path}.${key}`, depth });
      }
    }
  }
  return tensors;
}

function refuse(path: string, what: string, rules: EncodableRules, fix: string): SerializationError {
  return new SerializationError(
    `Cannot encode ${path} as ${rules.encoding}: it ${what}; ${fix}`,
    { path, suggestion: fix },
  );
}
