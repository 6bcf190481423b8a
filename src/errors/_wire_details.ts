// Kind-specific details of a worker's error payload (a msgpack map, snake_case keys), validated
// field by field: a malformed field becomes null (unknown) rather than failing the whole error,
// because the kind itself, decided by the worker, is still right.
import { z } from "zod";
import type { DeviceErrorReason, MemoryStats } from "./python_error_kinds.ts";

const nullable = <T extends z.ZodTypeAny>(schema: T) => schema.nullable().optional().catch(null).transform((value) => value ?? null);

// Byte counts past 2^53 decode as bigint; the precision lost by Number() is far below a byte
// count's meaning.
const byteCount = z.union([z.number().int().nonnegative(), z.bigint().nonnegative()]).transform(Number);
const dimensionIndex = z.number().int().min(-64).max(64);
const shape = z.array(z.number().int().nonnegative()).max(64);
const name = z.string().max(64);

const shapeSchema = z.object({
  expected: nullable(shape),
  got: nullable(shape),
  dimension: nullable(dimensionIndex),
  operation: nullable(name),
});

const dtypeSchema = z.object({
  expected: nullable(name),
  got: nullable(name),
  dtypes: z.array(name).max(16).optional().catch(undefined).transform((value) => value ?? []),
});

const deviceSchema = z.object({
  reason: z.enum(["not_available", "mismatch", "error"]).optional().catch(undefined)
    .transform((value): DeviceErrorReason => value ?? "error"),
  device: nullable(name),
  devices: z.array(name).max(16).optional().catch(undefined),
});

const memoryStatsSchema = z.object({
  allocated_bytes: byteCount,
  reserved_bytes: byteCount,
  max_allocated_bytes: byteCount,
}).transform((stats): MemoryStats => ({
  allocatedBytes: stats.allocated_bytes,
  reservedBytes: stats.reserved_bytes,
  maxAllocatedBytes: stats.max_allocated_bytes,
}));

const memorySchema = z.object({
  device: nullable(name),
  requested_bytes: nullable(byteCount),
  available_bytes: nullable(byteCount),
  total_bytes: nullable(byteCount),
  memory_stats: nullable(memoryStatsSchema),
});

// An object schema whose every field catches its own failures still fails on a non-object;
// `{}` then parses to all-unknown.
function lenient<T extends z.ZodTypeAny>(schema: T, details: Record<string, unknown>): z.output<T> {
  const parsed = schema.safeParse(details);
  return parsed.success ? parsed.data : schema.parse({});
}

/** Shape-mismatch facts: expected and received shapes, dimension, operation. */
export function shapeDetails(details: Record<string, unknown>): z.output<typeof shapeSchema> {
  return lenient(shapeSchema, details);
}

/** Dtype-mismatch facts. */
export function dtypeDetails(details: Record<string, unknown>): z.output<typeof dtypeSchema> {
  return lenient(dtypeSchema, details);
}

/** Device-error facts. */
export function deviceDetails(details: Record<string, unknown>): z.output<typeof deviceSchema> {
  return lenient(deviceSchema, details);
}

/** Out-of-memory facts, camelCased. */
export function memoryDetails(details: Record<string, unknown>): {
  device: string | null;
  requestedBytes: number | null;
  availableBytes: number | null;
  totalBytes: number | null;
  memoryStats: MemoryStats | null;
} {
  const parsed = lenient(memorySchema, details);
  return {
    device: parsed.device,
    requestedBytes: parsed.requested_bytes,
    availableBytes: parsed.available_bytes,
    totalBytes: parsed.total_bytes,
    memoryStats: parsed.memory_stats,
  };
}
