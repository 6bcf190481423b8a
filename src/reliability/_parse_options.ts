// Option validation for the reliability module, with the pool's message format:
// "Cannot <action>: options.<path> <problem>, received <value>". Out-of-range numbers throw
// RangeError; everything else TypeError.
import { z } from "zod";

function describeValue(value: unknown): string {
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

function valueAt(input: unknown, path: Array<string | number>): unknown {
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

/** An integer option from `min` to `max`. */
export function integer(min: number, max: number): z.ZodNumber {
  const problem = min === 1 ? "must be a positive integer" : `must be an integer from ${min} to ${max}`;
  return z.number({ invalid_type_error: "must be a number" })
    .int({ message: problem })
    .min(min, { message: problem })
    .max(max, { message: min === 1 ? `must be at most ${max}` : problem });
}

/** A duration in milliseconds, from `min` (0 or 1) to 2^31 - 1. */
export function durationMs(min: 0 | 1): z.ZodNumber {
  return z.number({ invalid_type_error: "must be a number of milliseconds" })
    .int({ message: "must be a whole number of milliseconds" })
    .min(min, { message: min === 0 ? "must not be negative" : "must be a positive number of milliseconds" })
    .max(2_147_483_647, { message: "must be at most 2147483647 ms" });
}

/** A function option (a clock, a random source). */
export function callable<T extends (...args: never[]) => unknown>(): z.ZodType<T> {
  return z.custom<T>((value) => typeof value === "function", { message: "must be a function" });
}

/**
 * Checks `parsed[low] <= parsed[high]` for two options with defaults, blaming the one the caller
 * actually gave (a RangeError naming it and the other's effective value).
 */
export function requireOrder(
  input: unknown,
  parsed: Record<string, unknown>,
  low: string,
  high: string,
  action: string,
  root = "options",
): void {
  const lowValue = parsed[low] as number;
  const highValue = parsed[high] as number;
  if (lowValue <= highValue) return;
  const given = (input ?? {}) as Record<string, unknown>;
  if (given[high] === undefined) {
    throw new RangeError(`Cannot ${action}: ${root}.${low} must be at most ${root}.${high} (${highValue}), received ${lowValue}`);
  }
  throw new RangeError(`Cannot ${action}: ${root}.${high} must be at least ${root}.${low} (${lowValue}), received ${highValue}`);
}
