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

/** Bytes a call frame may take: the header, the args, three bytes per UTF-16 unit of text. */
function callFrameBound(call: WireRequest): number {
  return CALL_HEADER_BYTES + call.args.byteLength +
    3 * (call.requestId.length + call.tool.length + call.sessionId.length + call.correlationId.length + call.traceparent.length);
}

/**
 * Encodes a call frame into a shared scratch buffer: the result is valid until the next call
 * (the caller copies it into a slot at once).
 */
export function encodeCallFrame(call: WireRequest, stream: boolean): Uint8Array {
  const bound = callFrameBound(call);
  if (bound > scratch.byteLength) {
    scratch = new Uint8Array(Math.max(bound, scratch.byteLength * 2));
    scratchView = new DataView(scratch.buffer);
  }
  return scratch.subarray(0, encodeCallAt(scratch, scratchView, 0, call, stream));
}

/**
 * Encodes a call frame at `start` of `target` (`view` over the same bytes), which has room for
 * `callFrameBound(call)` bytes there; the frame's length.
 */
function encodeCallAt(target: Uint8Array, view: DataView, start: number, call: WireRequest, stream: boolean): number {
  view.setUint8(start, CALL_MARKER);
  view.setUint8(start + 1, stream ? 1 : 0);
  view.setUint8(start + 2, call.encoding);
  view.setUint8(start + 3, 0);
  view.setFloat64(start + 4, call.deadlineUnixMs, true);
  view.setFloat64(start + 12, call.queueDeadlineUnixMs, true);
  let offset = start + CALL_HEADER_BYTES;
  offset += writeText(target, view, start + 20, call.requestId, offset);
  offset += writeText(target, view, start + 22, call.tool, offset);
  offset += writeText(target, view, start + 24, call.sessionId, offset);
  offset += writeText(target, view, start + 26, call.correlationId, offset);
  offset += writeText(target, view, start + 28, call.traceparent, offset);
  view.setUint16(start + 30, 0, true);
  view.setUint32(start + 32, call.args.byteLength, true);
  target.set(call.args, offset);
  return offset + call.args.byteLength - start;
}

/**
 * Writes `text` as UTF-8 at `offset` of `target` and its byte length as the u16 at `lengthAt`;
 * returns the byte length.
 */
function writeText(target: Uint8Array, view: DataView, lengthAt: number, text: string, offset: number): number {
  let written = text.length;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    // Ids and trace context are ASCII: a byte per character, no encoder call.
    if (code >= 0x80) {
      written = utf8.encodeInto(text, target.subarray(offset, offset + 3 * text.length)).written;
      break;
    }
    target[offset + index] = code;
  }
  if (written > 0xffff) throw new RangeError(`A call's text field is ${written} bytes, over 65535`);
  view.setUint16(lengthAt, written, true);
  return written;
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

  /**
   * Encodes call `call` straight into request slot `index` (no scratch copy); false, with nothing
   * written, when it might not fit a slot (the caller then spills it).
   */
  writeCall(index: number, call: WireRequest, stream: boolean): boolean {
    if (callFrameBound(call) > this.capacity) return false;
    const offset = this.requestSlot(index);
    const length = encodeCallAt(this.bytes, this.#view, offset + SLOT_HEADER_BYTES, call, stream);
    const word = offset >>> 2;
    this.words[word] = index >>> 0;
    this.words[word + 1] = this.epoch;
    this.words[word + 2] = length;
    this.words[word + 3] = 0;
    return true;
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
   * Checks response slot `index` against its header; the length of its frame, which starts
   * `SLOT_HEADER_BYTES` into the slot (read in place by the caller before the slot is freed).
   */
  checkResponse(index: number): number {
    return this.#check(this.responseSlot(index), index);
  }

  /** A DataView over the whole region (for reading frames in place). */
  get view(): DataView {
    return this.#view;
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
