/**
 * The fast lane's shared-memory layout: a request ring and a response ring in one region.
 *
 * Byte offsets from the region's payload start (every word a little-endian u32):
 *
 * ```
 *   0    magic "SPLN", version, epoch (random, non-zero), slot_bytes, slot_count
 *   64   request head   (host publishes: frames written) | 68  worker parked on it
 *   128  request tail   (worker publishes: frames read)  | 132 calls started (1 + last frame)
 *   192  response head  (worker publishes)                | 196 host parked (wants the doorbell)
 *   256  response tail  (host publishes)                  | 260 worker parked waiting for space
 *   512  request slots, then response slots (slot_count x slot_bytes each)
 * ```
 *
 * A slot is a 16-byte header (sequence = the frame's index, epoch, length, reserved) and a
 * msgpack array. Counters are u32 and wrap. A slot is trusted only when its sequence and epoch
 * match: a ring left by a dead process, or a torn write, is refused and never read as data.
 * Kept in step with python/src/snakepit_bridge/lane.py.
 *
 * @module
 */
import type { WireRequest } from "../transport.ts";

/** "SPLN", little-endian. */
export const LANE_MAGIC = 0x4e4c5053;
/** The lane protocol version this host speaks. */
export const LANE_VERSION = 1;
export const HEADER_BYTES = 512;
export const SLOT_HEADER_BYTES = 16;
export const OFF = {
  magic: 0,
  version: 4,
  epoch: 8,
  slotBytes: 12,
  slotCount: 16,
  reqHead: 64,
  reqParked: 68,
  reqTail: 128,
  reqStarted: 132,
  respHead: 192,
  hostParked: 196,
  respTail: 256,
  respSpaceParked: 260,
} as const;
/** Default slot size: a no-op call is ~100 bytes; bigger frames spill to a region of their own. */
export const SLOT_BYTES_DEFAULT = 8192;
/** Default slots per ring (a power of two). */
export const SLOT_COUNT_DEFAULT = 64;

/** Request frame kinds (host to worker). */
export const REQ = { call: 1, cancel: 2, credit: 3 } as const;
/** Response frame kinds (worker to host). */
export const RESP = { result: 1, error: 2, item: 3, end: 4, streamError: 5, expired: 6 } as const;
/** A frame that lies in a region of its own: `[9, region name, bytes]`. */
export const FRAME_SPILL = 9;

/**
 * The two hot frames have a fixed binary layout instead of msgpack (a msgpack array's first byte
 * is 0x90 or more, so the markers cannot be confused with one):
 *
 * ```
 * call   0x01, flags (1 stream), encoding, 0, f64 deadline_ms, f64 queue_deadline_ms,
 *        u16 lengths of id, tool, session, correlation, traceparent, 0, u32 args length,
 *        then those strings (UTF-8) and the args bytes
 * result 0x02, encoding, u16 id length, u32 data length, f64 decode/execute/encode ns,
 *        then the id and the data
 * ```
 */
export const CALL_MARKER = 0x01;
export const RESULT_MARKER = 0x02;
export const CALL_HEADER_BYTES = 36;
export const RESULT_HEADER_BYTES = 32;

const utf8 = new TextEncoder();
let scratch = new Uint8Array(4096);
let scratchView = new DataView(scratch.buffer);

/**
 * Encodes a call frame into a shared scratch buffer: the result is valid until the next call
 * (the caller copies it into a slot at once).
 */
export function encodeCallFrame(call: WireRequest, stream: boolean): Uint8Array {
  const texts = [call.requestId, call.tool, call.sessionId, call.correlationId, call.traceparent];
  let bound = CALL_HEADER_BYTES + call.args.byteLength;
  for (const text of texts) bound += text.length * 3;
  if (bound > scratch.byteLength) {
    scratch = new Uint8Array(Math.max(bound, scratch.byteLength * 2));
    scratchView = new DataView(scratch.buffer);
  }
  const view = scratchView;
  view.setUint8(0, CALL_MARKER);
  view.setUint8(1, stream ? 1 : 0);
  view.setUint8(2, call.encoding);
  view.setUint8(3, 0);
  view.setFloat64(4, call.deadlineUnixMs, true);
  view.setFloat64(12, call.queueDeadlineUnixMs, true);
  let offset = CALL_HEADER_BYTES;
  for (let index = 0; index < texts.length; index++) {
    const written = writeText(texts[index]!, offset);
    if (written > 0xffff) throw new RangeError(`A call's text field is ${written} bytes, over 65535`);
    view.setUint16(20 + 2 * index, written, true);
    offset += written;
  }
  view.setUint16(30, 0, true);
  view.setUint32(32, call.args.byteLength, true);
  scratch.set(call.args, offset);
  return scratch.subarray(0, offset + call.args.byteLength);
}

/** Writes `text` as UTF-8 at `offset` of the scratch buffer; its byte length. */
function writeText(text: string, offset: number): number {
  const target = scratch;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    // Ids and trace context are ASCII: a byte per character, no encoder call.
    if (code >= 0x80) return utf8.encodeInto(text, target.subarray(offset)).written;
    target[offset + index] = code;
  }
  return text.length;
}

/** A decoded result frame. */
export interface ResultFrame {
  id: string;
  data: Uint8Array;
  encoding: number;
  decodeNs: number;
  executeNs: number;
  encodeNs: number;
}

/** A result frame's fields (its data a view of `bytes`); LaneProtocolError when lengths are off. */
export function decodeResultFrame(bytes: Uint8Array): ResultFrame {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return decodeResultAt(bytes, view, 0, bytes.byteLength, false);
}

/**
 * Decodes the result frame of `length` bytes at `start` of `bytes` (`view` over the same bytes);
 * `copy`: whether the data must be copied out (it lies in a ring slot that will be reused).
 */
function decodeResultAt(bytes: Uint8Array, view: DataView, start: number, length: number, copy: boolean): ResultFrame {
  if (length < RESULT_HEADER_BYTES) {
    throw new LaneProtocolError(`a result frame of ${length} bytes is truncated`);
  }
  const idLength = view.getUint16(start + 2, true);
  const dataLength = view.getUint32(start + 4, true);
  if (RESULT_HEADER_BYTES + idLength + dataLength !== length) {
    throw new LaneProtocolError(`a result frame's lengths do not add up to its ${length} bytes`);
  }
  const idStart = start + RESULT_HEADER_BYTES;
  const idEnd = idStart + idLength;
  let id = "";
  for (let index = idStart; index < idEnd; index++) {
    const byte = bytes[index]!;
    if (byte >= 0x80) {
      id = new TextDecoder().decode(bytes.subarray(idStart, idEnd));
      break;
    }
    id += String.fromCharCode(byte);
  }
  const end = start + length;
  return {
    id,
    data: copy ? bytes.slice(idEnd, end) : bytes.subarray(idEnd, end),
    encoding: view.getUint8(start + 1),
    decodeNs: view.getFloat64(start + 8, true),
    executeNs: view.getFloat64(start + 16, true),
    encodeNs: view.getFloat64(start + 24, true),
  };
}

/** The lane's shared memory broke the protocol (stale, torn or malformed slot or frame). */
export class LaneProtocolError extends Error {
  constructor(message: string) {
    super(`Fast lane protocol error: ${message}`);
    this.name = "LaneProtocolError";
  }
}

/** Bytes a lane region's payload needs. */
export function laneRegionBytes(slotBytes = SLOT_BYTES_DEFAULT, slotCount = SLOT_COUNT_DEFAULT): number {
  return HEADER_BYTES + 2 * slotBytes * slotCount;
}

/** The host's view of a lane region: header words, both rings. */
export class LaneLayout {
  readonly words: Uint32Array;
  readonly bytes: Uint8Array;
  readonly epoch: number;
  readonly slotBytes: number;
  readonly slotCount: number;
  readonly capacity: number;
  readonly #mask: number;
  readonly #view: DataView;

  /** Wraps an initialized region payload (see {@link LaneLayout.initialize}). */
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const words = this.words;
    if (words[OFF.magic >>> 2] !== LANE_MAGIC) throw new LaneProtocolError("the region is not a fast lane");
    if (words[OFF.version >>> 2] !== LANE_VERSION) {
      throw new LaneProtocolError(`the lane speaks version ${words[OFF.version >>> 2]}, this host ${LANE_VERSION}`);
    }
    this.epoch = words[OFF.epoch >>> 2];
    this.slotBytes = words[OFF.slotBytes >>> 2];
    this.slotCount = words[OFF.slotCount >>> 2];
    this.capacity = this.slotBytes - SLOT_HEADER_BYTES;
    this.#mask = this.slotCount - 1;
  }

  /** Writes a fresh header (random epoch, zeroed counters) into `bytes`. */
  static initialize(bytes: Uint8Array, slotBytes = SLOT_BYTES_DEFAULT, slotCount = SLOT_COUNT_DEFAULT): LaneLayout {
    if (bytes.byteLength < laneRegionBytes(slotBytes, slotCount)) {
      throw new RangeError(`A lane of ${slotCount} x ${slotBytes}-byte slots needs ${laneRegionBytes(slotBytes, slotCount)} bytes`);
    }
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, HEADER_BYTES >>> 2);
    words.fill(0);
    const epoch = new Uint32Array(1);
    while (epoch[0] === 0) crypto.getRandomValues(epoch);
    words[OFF.version >>> 2] = LANE_VERSION;
    words[OFF.epoch >>> 2] = epoch[0];
    words[OFF.slotBytes >>> 2] = slotBytes;
    words[OFF.slotCount >>> 2] = slotCount;
    // Magic last: a reader never sees a magic with a half-written header.
    Atomics.store(words, OFF.magic >>> 2, LANE_MAGIC);
    return new LaneLayout(bytes);
  }

  /** Byte offset of request slot `index`. */
  requestSlot(index: number): number {
    return HEADER_BYTES + (index & this.#mask) * this.slotBytes;
  }

  /** Byte offset of response slot `index`. */
  responseSlot(index: number): number {
    return HEADER_BYTES + (this.slotCount + (index & this.#mask)) * this.slotBytes;
  }

  /** Writes frame `index` into the request ring (the caller publishes the head after). */
  writeRequest(index: number, frame: Uint8Array): void {
    const offset = this.requestSlot(index);
    this.bytes.set(frame, offset + SLOT_HEADER_BYTES);
    const word = offset >>> 2;
    this.words[word] = index >>> 0;
    this.words[word + 1] = this.epoch;
    this.words[word + 2] = frame.byteLength;
    this.words[word + 3] = 0;
  }

  /** A copy of response frame `index`, checked against its slot header. */
  readResponse(index: number): Uint8Array {
    return this.#read(this.responseSlot(index), index);
  }

  /**
   * Response frame `index`: a result frame decoded in place (only its data copied out), or a
   * copy of any other frame's bytes.
   */
  readResponseFrame(index: number): ResultFrame | Uint8Array {
    const offset = this.responseSlot(index);
    const length = this.#check(offset, index);
    const start = offset + SLOT_HEADER_BYTES;
    if (this.bytes[start] !== RESULT_MARKER) return this.bytes.slice(start, start + length);
    return decodeResultAt(this.bytes, this.#view, start, length, true);
  }

  /** A copy of request frame `index` (for tests and diagnostics). */
  readRequest(index: number): Uint8Array {
    return this.#read(this.requestSlot(index), index);
  }

  #read(offset: number, index: number): Uint8Array {
    const length = this.#check(offset, index);
    const start = offset + SLOT_HEADER_BYTES;
    return this.bytes.slice(start, start + length);
  }

  /** Checks the slot header at `offset` for frame `index`; the frame's length. */
  #check(offset: number, index: number): number {
    const word = offset >>> 2;
    const sequence = this.words[word];
    const epoch = this.words[word + 1];
    const length = this.words[word + 2];
    if (epoch !== this.epoch) {
      throw new LaneProtocolError(
        `slot of frame ${index} carries epoch 0x${epoch.toString(16)}, the lane's is 0x${this.epoch.toString(16)} (a stale ring)`,
      );
    }
    if (sequence !== (index >>> 0)) {
      throw new LaneProtocolError(`slot of frame ${index} carries frame ${sequence} (a stale or torn slot)`);
    }
    if (length === 0 || length > this.capacity) {
      throw new LaneProtocolError(`frame ${index} claims ${length} bytes; a slot holds 1 to ${this.capacity}`);
    }
    return length;
  }

  load(offset: number): number {
    return Atomics.load(this.words, offset >>> 2);
  }

  store(offset: number, value: number): void {
    Atomics.store(this.words, offset >>> 2, value >>> 0);
  }
}
