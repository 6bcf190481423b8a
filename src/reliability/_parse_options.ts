// Option schemas of the reliability module; the parsing itself (and its message format) is
// src/_validation.ts, shared with the pool and telemetry.
import { z } from "zod";
export { parseOptions } from "../_validation.ts";

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
