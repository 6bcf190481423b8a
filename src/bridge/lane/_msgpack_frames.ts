/**
 * The fast lane's msgpack frames (cancel, credit, spill, errors, stream items): `[kind, id, ...]`
 * arrays; the hot call and result frames are binary (see `ring.ts`).
 *
 * @module
 */
import { Packr, Unpackr } from "msgpackr";
import { LaneProtocolError } from "./ring.ts";

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  encodeUndefinedAsNil: true,
} as unknown as ConstructorParameters<typeof Packr>[0]);
const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: "auto",
} as unknown as ConstructorParameters<typeof Unpackr>[0]);

/** Encodes a frame; valid until the next call (the caller copies it into a slot at once). */
export function encodeFrame(frame: unknown[]): Uint8Array {
  return packr.pack(frame);
}

/** Decodes a frame; LaneProtocolError unless it is a `[kind, id, ...]` array. */
export function decodeFrame(bytes: Uint8Array): unknown[] {
  let frame: unknown;
  try {
    frame = unpackr.unpack(bytes);
  } catch (error) {
    throw new LaneProtocolError(`a frame is not valid msgpack (${(error as Error).message})`);
  }
  if (!Array.isArray(frame) || frame.length < 2 || typeof frame[0] !== "number") {
    throw new LaneProtocolError(`a frame is not a [kind, id, ...] array: ${describeFrame(frame)}`);
  }
  return frame;
}

/** A short, printable rendering of a frame for error messages. */
export function describeFrame(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, item) => item instanceof Uint8Array ? `<${item.byteLength} bytes>` : item)
      .slice(0, 120);
  } catch {
    return String(value).slice(0, 120);
  }
}
