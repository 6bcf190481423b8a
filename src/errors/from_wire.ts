/**
 * Turns a worker's structured error payload into the matching error class.
 *
 * The payload is validated with zod; anything malformed degrades to a plain `PythonError` or a
 * `SerializationError` rather than throwing. Kinds map to classes:
 *
 * | `kind` | class |
 * | --- | --- |
 * | `shape_mismatch` | `ShapeMismatchError` |
 * | `dtype_mismatch` | `DtypeMismatchError` |
 * | `device` | `DeviceError` |
 * | `out_of_memory` | `OutOfMemoryError` |
 * | `unknown_tool`, `invalid_arguments` | `UnknownToolError`, `InvalidArgumentsError` |
 * | `serialization`, `worker_busy`, `cancelled`, `deadline_exceeded` | the pool's classes |
 * | `region_access` | `RegionAccessError` |
 * | `python`, `import`, anything else | `PythonError` |
 *
 * @module
 */
import { z } from "zod";
import { decodeValue } from "../codec/msgpack.ts";
import { CancelledError, SerializationError, WorkerBusyError } from "./pool_errors.ts";
import { InvalidArgumentsError, PythonError, type PythonErrorInit, UnknownToolError } from "./python_error.ts";
import { DeviceError, DtypeMismatchError, OutOfMemoryError, ShapeMismatchError } from "./python_error_kinds.ts";
import { RegionAccessError } from "./region_errors.ts";
import type { SnakepitError } from "./snakepit_error.ts";
import { deviceDetails, dtypeDetails, memoryDetails, shapeDetails } from "./_wire_details.ts";

const frameSchema = z.object({
  file: z.string(),
  line: z.number().int().nonnegative(),
  function: z.string(),
  source: z.string(),
});

const causeSchema = z.object({
  relation: z.string(),
  python_type: z.string(),
  python_module: z.string(),
  message: z.string(),
  frames: z.array(frameSchema),
});

const bytesSchema = z.custom<Uint8Array>((value) => value instanceof Uint8Array);

/** The `ErrorPayload` message as decoded by the gRPC layer (snake_case, defaults filled). */
export const errorPayloadSchema = z.object({
  kind: z.string(),
  python_type: z.string(),
  python_module: z.string(),
  message: z.string(),
  frames: z.array(frameSchema),
  causes: z.array(causeSchema),
  notes: z.array(z.string()),
  suggestion: z.string(),
  retryable: z.boolean(),
  details: bytesSchema,
});

/** Context of the call the error belongs to. */
export interface WireErrorContext {
  tool: string;
  correlationId: string;
}

/**
 * Builds the error class for a worker's error payload.
 *
 * @param payload the `error` field of an `ExecuteResponse` or `StreamChunk`
 * @param context the tool and correlation id of the call
 * @returns a `SnakepitError`; never throws
 */
export function errorFromWire(payload: unknown, context: WireErrorContext): SnakepitError {
  const parsed = errorPayloadSchema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return new SerializationError(
      `Tool "${context.tool}" failed, but its error payload was malformed ` +
        `(${issue?.path.join(".") || "payload"}: ${issue?.message}); ` +
        "the worker and host may run different protocol versions",
      { correlationId: context.correlationId, cause: parsed.error },
    );
  }
  const wire = parsed.data;
  const init: PythonErrorInit = {
    pythonType: wire.python_type || "Exception",
    pythonModule: wire.python_module,
    frames: wire.frames,
    causes: wire.causes.map((cause) => ({
      relation: cause.relation === "cause" ? "cause" : "context",
      pythonType: cause.python_type,
      pythonModule: cause.python_module,
      message: cause.message,
      frames: cause.frames,
    })),
    notes: wire.notes,
    details: decodeDetails(wire.details),
    tool: context.tool,
    correlationId: context.correlationId,
    suggestion: wire.suggestion || undefined,
    retryable: wire.retryable,
  };
  const message = wire.message;
  switch (wire.kind) {
    case "shape_mismatch":
      return new ShapeMismatchError(message, { ...init, ...shapeDetails(init.details!) });
    case "dtype_mismatch":
      return new DtypeMismatchError(message, { ...init, ...dtypeDetails(init.details!) });
    case "device":
      return new DeviceError(message, { ...init, ...deviceDetails(init.details!) });
    case "out_of_memory":
      return new OutOfMemoryError(message, { ...init, ...memoryDetails(init.details!) });
    case "unknown_tool":
      return new UnknownToolError(message, init);
    case "invalid_arguments":
      return new InvalidArgumentsError(message, init);
    case "serialization":
      return new SerializationError(`Tool "${context.tool}" returned a value that cannot be encoded: ${message}`, {
        correlationId: context.correlationId,
        suggestion: init.suggestion,
      });
    case "worker_busy":
      return new WorkerBusyError(`Tool "${context.tool}" was refused: ${message}`, {
        correlationId: context.correlationId,
        suggestion: init.suggestion,
      });
    case "region_access":
      return new RegionAccessError(`Tool "${context.tool}" refused a shared-memory value: ${message}`, {
        reason: RegionAccessError.reasonFrom(init.details?.reason),
        regionName: [init.details?.region_name, init.details?.regionName, init.details?.region]
          .find((value): value is string => typeof value === "string"),
        correlationId: context.correlationId,
        suggestion: init.suggestion,
      });
    case "cancelled":
    case "deadline_exceeded":
      return new CancelledError(`Tool "${context.tool}" was cancelled by the worker: ${message}`, {
        correlationId: context.correlationId,
      });
    default:
      return new PythonError(message, init);
  }
}

function decodeDetails(bytes: Uint8Array): Record<string, unknown> {
  if (bytes.length === 0) return {};
  try {
    const value = decodeValue(bytes);
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? value as Record<string, unknown>
      : { value };
  } catch {
    // Details are a convenience; the error itself must still arrive.
    return {};
  }
}
