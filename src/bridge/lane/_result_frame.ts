/**
 * Reading the fast lane's binary result frames in place (layout in `ring.ts`):
 *
 * ```
 * 0x02, encoding, u16 id length, u32 data length, f64 decode/execute/encode ns, id, data
 * ```
 *
 * A reply is matched to its call by comparing the frame's id bytes with the call's id where
 * they lie, so the hot path makes no id string; only the data is copied out of the slot.
 *
 * @module
 */
import type { WireOutcome } from "../transport.ts";
import { LaneProtocolError, RESULT_HEADER_BYTES } from "./ring.ts";

/** Checks the lengths of the result frame of `length` bytes at `start`. */
export function checkResultFrame(view: DataView, start: number, length: number): void {
  if (length < RESULT_HEADER_BYTES) {
    throw new LaneProtocolError(`a result frame of ${length} bytes is truncated`);
  }
  if (RESULT_HEADER_BYTES + view.getUint16(start + 2, true) + view.getUint32(start + 4, true) !== length) {
    throw new LaneProtocolError(`a result frame's lengths do not add up to its ${length} bytes`);
  }
}

/**
 * Whether the (checked) result frame at `start` answers request `id`. Ids are ASCII, one byte
 * per character; an id that is not never matches here and is found by `resultId` instead.
 */
export function resultAnswers(bytes: Uint8Array, view: DataView, start: number, id: string): boolean {
  const idLength = view.getUint16(start + 2, true);
  if (idLength !== id.length) return false;
  const idStart = start + RESULT_HEADER_BYTES;
  for (let index = 0; index < idLength; index++) {
    if (bytes[idStart + index] !== id.charCodeAt(index)) return false;
  }
  return true;
}

const idCodes: number[] = [];

/**
 * The request id of the (checked) result frame at `start`: one flat string from the character
 * codes when ASCII (a string built by `+=` is a rope, flattened again by the lookups after).
 */
export function resultId(bytes: Uint8Array, view: DataView, start: number): string {
  const idStart = start + RESULT_HEADER_BYTES;
  const idEnd = idStart + view.getUint16(start + 2, true);
  const codes = idCodes;
  codes.length = idEnd - idStart;
  for (let index = idStart; index < idEnd; index++) {
    const byte = bytes[index]!;
    if (byte >= 0x80) return new TextDecoder().decode(bytes.subarray(idStart, idEnd));
    codes[index - idStart] = byte;
  }
  return String.fromCharCode.apply(null, codes);
}

/**
 * The outcome the (checked) result frame of `length` bytes at `start` carries; `copy`: whether
 * its data must be copied out (it lies in a ring slot that will be reused).
 */
export function resultOutcome(bytes: Uint8Array, view: DataView, start: number, length: number, copy: boolean): WireOutcome {
  const dataStart = start + RESULT_HEADER_BYTES + view.getUint16(start + 2, true);
  const end = start + length;
  return {
    ok: true,
    data: copy ? copyOut(bytes, dataStart, end) : bytes.subarray(dataStart, end),
    encoding: bytes[start + 1]!,
    timing: {
      decodeNs: view.getFloat64(start + 8, true),
      executeNs: view.getFloat64(start + 16, true),
      encodeNs: view.getFloat64(start + 24, true),
    },
  };
}

/** Copies of at most this many bytes are carved from a shared block (see `copyOut`). */
const POOLED_COPY_BYTES_MAX = 64;
const COPY_POOL_BYTES = 8192;
let copyPool = new ArrayBuffer(COPY_POOL_BYTES);
let copyPoolOffset = COPY_POOL_BYTES;

/**
 * A copy of `bytes[start..end]` backed by an ArrayBuffer. Not `slice`: a small typed array made
 * that way has no ArrayBuffer yet (Bun) or lives on the heap (V8), and the msgpack decoder's
 * first `.buffer` read pays to move it. Small copies (most results: a no-op's is one byte) are
 * carved from an 8 KiB block, as Node's `Buffer.allocUnsafe` does, so that one allocation serves
 * hundreds of results (a fresh ArrayBuffer costs ~0.3 µs on Deno); a kept result keeps at most
 * its block alive.
 */
function copyOut(bytes: Uint8Array, start: number, end: number): Uint8Array {
  const length = end - start;
  if (length > POOLED_COPY_BYTES_MAX) {
    const copy = new Uint8Array(new ArrayBuffer(length));
    copy.set(bytes.subarray(start, end));
    return copy;
  }
  if (copyPoolOffset + length > COPY_POOL_BYTES) {
    copyPool = new ArrayBuffer(COPY_POOL_BYTES);
    copyPoolOffset = 0;
  }
  const copy = new Uint8Array(copyPool, copyPoolOffset, length);
  // Eight-byte steps keep every copy aligned for a DataView's wider reads.
  copyPoolOffset += (length + 7) & ~7;
  for (let index = 0; index < length; index++) copy[index] = bytes[start + index]!;
  return copy;
}
