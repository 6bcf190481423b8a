/**
 * Option validation shared by every module, with one message format:
 * "Cannot <action>: options.<path> <problem>, received <value>". Out-of-range numbers throw
 * RangeError; everything else TypeError.
 *
 * @module
 */
import type { z } from "zod";

/** Renders a received value for an error message. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  if (value === undefined) return "undefined";
  if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) !== Object.prototype && !Array.isArray(value)) {
    return `an instance of ${value.constructor?.name ?? "an unknown class"}`;
  }
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

export function valueAt(input: unknown, path: Array<string | number>): unknown {
  let current = input;
  for (const key of path) current = (current as Record<string | number, unknown> | undefined)?.[key];
  return current;
}

/**
 * Validates `input` (undefined means `{}`) against `schema`, or throws naming action, path and
 * value. `root` names the object in messages (`options`, or `options.retry` when nested).
 */
export function parseOptions<T extends z.ZodTypeAny>(schema: T, input: unknown, action: string, root = "options"): z.output<T> {
  if (input !== undefined && (input === null || typeof input !== "object" || Array.isArray(input))) {
    throw new TypeError(`Cannot ${action}: ${root} must be an object, received ${describeValue(input)}`);
  }
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    throw new TypeError(`Cannot ${action}: ${root} has unknown option(s) ${issue.keys.map((key) => JSON.stringify(key)).join(", ")}`);
  }
  const path = [root, ...issue.path].join(".");
  const message = `Cannot ${action}: ${path} ${issue.message}, received ${describeValue(valueAt(input, issue.path))}`;
  throw issue.code === "too_small" || issue.code === "too_big" ? new RangeError(message) : new TypeError(message);
}
