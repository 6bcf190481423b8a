/**
 * W3C trace context (`traceparent`) helpers: make one, read its trace id, continue a trace.
 *
 * @module
 */
import { randomBytes } from "node:crypto";

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The parts of a `traceparent`. */
export interface TraceContext {
  version: string;
  traceId: string;
  parentId: string;
  flags: string;
}

/**
 * Parses a `traceparent`; undefined when malformed or all-zero (invalid per the W3C spec).
 *
 * @example
 * ```ts
 * parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")?.traceId;
 * // "0af7651916cd43dd8448eb211c80319c"
 * ```
 */
export function parseTraceparent(traceparent: string): TraceContext | undefined {
  const match = TRACEPARENT.exec(traceparent);
  if (!match || match[1] === "ff" || /^0+$/.test(match[2]!) || /^0+$/.test(match[3]!)) return undefined;
  return { version: match[1]!, traceId: match[2]!, parentId: match[3]!, flags: match[4]! };
}

/** The trace id of a `traceparent`, or undefined. */
export function traceIdOf(traceparent: string): string | undefined {
  return parseTraceparent(traceparent)?.traceId;
}

/**
 * A `traceparent` for a new span: a child of `parent` (same trace id) when given and valid, else
 * the root of a new sampled trace.
 *
 * @example
 * ```ts
 * const root = newTraceparent();
 * const child = newTraceparent(root); // same trace id, new span id
 * await pool.call("embed", { text }, { traceparent: child });
 * ```
 */
export function newTraceparent(parent?: string): string {
  const parsed = parent === undefined ? undefined : parseTraceparent(parent);
  const traceId = parsed?.traceId ?? randomBytes(16).toString("hex");
  const flags = parsed?.flags ?? "01";
  return `00-${traceId}-${randomBytes(8).toString("hex")}-${flags}`;
}
