/**
 * The `Execute` RPC's messages, written and read by hand: the call path's one hot codec.
 *
 * proto-loader converts through plain objects (`fromObject`, then `toObject` with every default
 * filled in), which costs a gRPC call several microseconds on each side of the wire. A request
 * has a fixed shape and a result reply is a few scalars, so both are coded directly here. Any
 * reply this reader does not know field by field (an error payload, a result that names
 * shared-memory regions, a field added later) is handed to the generic decoder, so what the
 * caller receives never depends on which path read it.
 *
 * Field numbers mirror `proto/snakepit/v1/worker.proto` (`ExecuteRequest`, `ExecuteResponse`,
 * `Payload`, `CallMetadata`, `Timing`); `tests/grpc_execute_wire.test.ts` checks both directions
 * against proto-loader's own codec.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { WireOutcome, WireRequest } from "./transport.ts";

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;
/** Largest varint: 10 bytes carry 64 bits. */
const VARINT_BYTES_MAX = 10;

/** A reply this reader does not decode itself, left to the generic decoder. */
const UNKNOWN = null;

/**
 * Encodes `request` as an `ExecuteRequest`. Empty strings and a zero deadline are left out, as
 * proto3 reads absent fields as their defaults.
 */
export function encodeExecuteRequest(request: WireRequest): Buffer {
  const requestId = Buffer.from(request.requestId, "utf8");
  const tool = Buffer.from(request.tool, "utf8");
  const sessionId = Buffer.from(request.sessionId, "utf8");
  const correlationId = Buffer.from(request.correlationId, "utf8");
  const traceparent = Buffer.from(request.traceparent, "utf8");
  const args = request.args;
  const payloadBytes = (request.encoding ? 1 + varintBytes(request.encoding) : 0) +
    lengthDelimitedBytes(args.length);
  const metadataBytes = optionalStringBytes(correlationId.length) +
    optionalStringBytes(traceparent.length);
  const deadline = Math.trunc(request.deadlineUnixMs);
  const total = optionalStringBytes(requestId.length) + optionalStringBytes(tool.length) +
    lengthDelimitedBytes(payloadBytes) + optionalStringBytes(sessionId.length) +
    (deadline > 0 ? 1 + varintBytes(deadline) : 0) +
    (metadataBytes > 0 ? lengthDelimitedBytes(metadataBytes) : 0);
  const out = Buffer.allocUnsafe(total);
  let at = writeOptionalBytes(out, 0, 1, requestId);
  at = writeOptionalBytes(out, at, 2, tool);
  at = writeHeader(out, at, 3, payloadBytes);
  if (request.encoding) {
    out[at++] = (1 << 3) | WIRE_VARINT;
    at = writeVarint(out, at, request.encoding);
  }
  at = writeHeader(out, at, 2, args.length);
  out.set(args, at);
  at += args.length;
  at = writeOptionalBytes(out, at, 4, sessionId);
  if (deadline > 0) {
    out[at++] = (5 << 3) | WIRE_VARINT;
    at = writeVarint(out, at, deadline);
  }
  if (metadataBytes > 0) {
    at = writeHeader(out, at, 6, metadataBytes);
    at = writeOptionalBytes(out, at, 1, correlationId);
    at = writeOptionalBytes(out, at, 2, traceparent);
  }
  if (at !== total) throw new Error(`ExecuteRequest encoder wrote ${at} of ${total} bytes`);
  return out;
}

/**
 * Decodes an `ExecuteResponse` that carries a result into a `WireOutcome`; anything else
 * (errors included) goes through `generic`, proto-loader's decoder, and `fromGeneric`.
 */
export function decodeExecuteReply(
  bytes: Buffer,
  generic: (bytes: Buffer) => unknown,
  fromGeneric: (reply: unknown) => WireOutcome,
): WireOutcome {
  return readResultReply(bytes) ?? fromGeneric(generic(bytes));
}

function readResultReply(bytes: Buffer): WireOutcome | typeof UNKNOWN {
  const reader = new Reader(bytes, 0, bytes.length);
  let result: { data: Uint8Array; encoding: number } | undefined;
  const timing = { decodeNs: 0, executeNs: 0, encodeNs: 0 };
  while (reader.at < reader.end) {
    const tag = reader.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 1 && wireType === WIRE_LENGTH_DELIMITED) {
      reader.skip(wireType); // request_id: the caller knows which call this answers.
    } else if (field === 2 && wireType === WIRE_LENGTH_DELIMITED) {
      const length = reader.varint();
      result = readPayload(new Reader(bytes, reader.at, reader.at + length)) ?? undefined;
      if (result === undefined) return UNKNOWN;
      reader.at += length;
    } else if (field === 4 && wireType === WIRE_LENGTH_DELIMITED) {
      const length = reader.varint();
      if (!readTiming(new Reader(bytes, reader.at, reader.at + length), timing)) return UNKNOWN;
      reader.at += length;
    } else {
      return UNKNOWN; // An error payload, or a field this reader does not know.
    }
  }
  if (reader.at !== reader.end || result === undefined) return UNKNOWN;
  return { ok: true, data: result.data, encoding: result.encoding, timing };
}

function readPayload(reader: Reader): { data: Uint8Array; encoding: number } | typeof UNKNOWN {
  let encoding = 0;
  let data: Uint8Array = reader.bytes.subarray(0, 0);
  while (reader.at < reader.end) {
    const tag = reader.varint();
    if (tag === ((1 << 3) | WIRE_VARINT)) {
      encoding = reader.varint();
    } else if (tag === ((2 << 3) | WIRE_LENGTH_DELIMITED)) {
      const length = reader.varint();
      data = reader.bytes.subarray(reader.at, reader.at + length);
      reader.at += length;
    } else {
      return UNKNOWN; // Regions (shared-memory tensors), or a field added later.
    }
  }
  return reader.at === reader.end ? { data, encoding } : UNKNOWN;
}

function readTiming(
  reader: Reader,
  timing: { decodeNs: number; executeNs: number; encodeNs: number },
): boolean {
  while (reader.at < reader.end) {
    const tag = reader.varint();
    if (tag === ((1 << 3) | WIRE_VARINT)) timing.decodeNs = reader.varint();
    else if (tag === ((2 << 3) | WIRE_VARINT)) timing.executeNs = reader.varint();
    else if (tag === ((3 << 3) | WIRE_VARINT)) timing.encodeNs = reader.varint();
    else return false;
  }
  return reader.at === reader.end;
}

/** A bounds-checked cursor over one message; reading past `end` throws (a malformed reply). */
class Reader {
  constructor(readonly bytes: Buffer, public at: number, readonly end: number) {
    if (end > bytes.length) {
      throw new RangeError(`message of ${end - at} bytes overruns its ${bytes.length}-byte buffer`);
    }
  }

  /** A varint as a Number: exact up to 2^53, which no time in nanoseconds nor length reaches. */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let index = 0; index < VARINT_BYTES_MAX; index++) {
      if (this.at >= this.end) throw new RangeError("truncated varint");
      const byte = this.bytes[this.at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw new RangeError("varint longer than 10 bytes");
  }

  skip(wireType: number): void {
    if (wireType === WIRE_VARINT) this.varint();
    else if (wireType === WIRE_FIXED64) this.at += 8;
    else if (wireType === WIRE_LENGTH_DELIMITED) {
      const length = this.varint(); // Read first: `this.at += this.varint()` would add to the old offset.
      this.at += length;
    } else if (wireType === WIRE_FIXED32) this.at += 4;
    else throw new RangeError(`unsupported wire type ${wireType}`);
    if (this.at > this.end) throw new RangeError("field overruns its message");
  }
}

function varintBytes(value: number): number {
  let bytes = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    bytes++;
  }
  return bytes;
}

function lengthDelimitedBytes(length: number): number {
  return 1 + varintBytes(length) + length;
}

function optionalStringBytes(length: number): number {
  return length > 0 ? lengthDelimitedBytes(length) : 0;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  while (value >= 128) {
    out[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[at++] = value;
  return at;
}

function writeHeader(out: Buffer, at: number, field: number, length: number): number {
  out[at++] = (field << 3) | WIRE_LENGTH_DELIMITED;
  return writeVarint(out, at, length);
}

function writeOptionalBytes(out: Buffer, at: number, field: number, bytes: Uint8Array): number {
  if (bytes.length === 0) return at;
  at = writeHeader(out, at, field, bytes.length);
  out.set(bytes, at);
  return at + bytes.length;
}
