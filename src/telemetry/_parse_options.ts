// Option validation for telemetry, health and hardware: the pool's parser, so messages read
// "Cannot <action>: options.<path> <problem>, received <value>" everywhere.
import type { z } from "zod";
import { parseOptions } from "../_validation.ts";

/** Parses `options` (undefined counts as `{}`) or throws the house `TypeError` / `RangeError`. */
export function parseTelemetryOptions<S extends z.ZodTypeAny>(schema: S, options: unknown, action: string): z.output<S> {
  if (options !== undefined && (options === null || typeof options !== "object")) {
    throw new TypeError(`Cannot ${action}: options must be an object, received ${String(options)}`);
  }
  return parseOptions(schema, options ?? {}, action, "options");
}
