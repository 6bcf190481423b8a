/**
 * The fast lane's calls and streams waiting for replies; the ids of abandoned calls whose late
 * replies are dropped quietly; and one timer for the queue deadlines of calls waiting in the
 * ring behind others.
 *
 * Calls wait in a queue in the order they were sent, because a worker answers them in that
 * order unless it runs calls concurrently: a reply is checked against the oldest call first,
 * in place, and only a reply out of order is looked up by id. (A Map keyed by fresh id strings
 * cost ~0.4 µs a call on Deno, a tenth of a fast-lane call's host time.) Streams, which
 * interleave, are kept by id.
 *
 * @module
 */
import { GrpcStatus } from "../../errors/snakepit_error.ts";
import { replyDecoders } from "../_proto.ts";
import { ChannelError, type WireOutcome, type WireStreamEvent } from "../transport.ts";
import { decodeFrame, describeFrame } from "./_msgpack_frames.ts";
import { checkResultFrame, resultAnswers, resultId, resultOutcome } from "./_result_frame.ts";
import { FRAME_SPILL, LaneProtocolError, RESP, RESULT_MARKER } from "./ring.ts";

/** Ids of abandoned calls whose late replies are dropped quietly (oldest forgotten first). */
const TOMBSTONES_MAX = 4096;

/** A call waiting for its reply. */
export interface PendingCall {
  kind: "call";
  /** The request id. */
  id: string;
  /** The request frame's index in the ring, once published (undefined in the backlog). */
  index: number | undefined;
  /** When the call fails unless the worker has started it (ms since the epoch); 0: unwatched. */
  queueDeadline: number;
  resolve: (outcome: WireOutcome) => void;
  reject: (error: Error) => void;
  cleanup: () => void;
}

/** A stream waiting for its items. */
export interface PendingStream {
  kind: "stream";
  push: (event: WireStreamEvent) => void;
  fail: (error: Error) => void;
}

/** Compacts the call queue once this many entries before its head are spent. */
const SPENT_CALLS_MAX = 64;

/** Replies awaited: calls in the order sent, streams by request id. */
export class PendingReplies {
  /** Calls in the order sent; `#callsHead` is the oldest still waiting. */
  readonly #calls: Array<PendingCall | undefined> = [];
  #callsHead = 0;
  readonly #streams = new Map<string, PendingStream>();
  readonly #tombstones = new Set<string>();
  readonly #decoders = replyDecoders();
  #queueTimer: ReturnType<typeof setTimeout> | undefined;
  #queueTimerAt = 0;

  /**
   * @param started whether the worker has started (or dropped) a call
   */
  constructor(readonly started: (entry: PendingCall) => boolean) {}

  get size(): number {
    return this.#calls.length - this.#callsHead + this.#streams.size;
  }

  /** Whether stream `id` still waits for items. */
  hasStream(id: string): boolean {
    return this.#streams.has(id);
  }

  addCall(entry: PendingCall): void {
    this.#calls.push(entry);
  }

  addStream(id: string, entry: PendingStream): void {
    this.#streams.set(id, entry);
  }

  /** Removes a call (one that failed before it was sent, or was answered out of order). */
  removeCall(entry: PendingCall): void {
    const calls = this.#calls;
    const at = calls.indexOf(entry, this.#callsHead);
    if (at < 0) return;
    if (at === this.#callsHead) this.#advanceHead();
    else calls.splice(at, 1);
  }

  /** Gives up on a call: a late reply to it is dropped, not a protocol error. */
  forgetCall(entry: PendingCall): void {
    this.removeCall(entry);
    this.#tombstone(entry.id);
  }

  /** Gives up on stream `id`: late items are dropped, not a protocol error. */
  forgetStream(id: string): void {
    this.#streams.delete(id);
    this.#tombstone(id);
  }

  /**
   * Fails the call of `entry` at `queueDeadline` if the worker has not started it by then (the worker,
   * reaching it later, drops it unrun: it checks the same deadline after counting it started,
   * so the two never disagree). One timer for all, armed at the earliest deadline: a timer per
   * call would cost more than the call.
   */
  watchQueueDeadline(entry: PendingCall, queueDeadline: number): void {
    entry.queueDeadline = queueDeadline;
    if (this.#queueTimer === undefined || queueDeadline < this.#queueTimerAt) this.#armQueueTimer(queueDeadline);
  }

  /**
   * Arms the call's deadline timer and abort listener (its cleanup disarms them): either ends
   * the call with a ChannelError, forgets it, and runs `cancelRemote`.
   */
  guard(entry: PendingCall, deadlineUnixMs: number, signal: AbortSignal | undefined, cancelRemote: () => void): void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const abandon = (error: ChannelError) => {
      if (!this.#waiting(entry)) return;
      this.forgetCall(entry);
      cancelRemote();
      entry.cleanup();
      entry.reject(error);
    };
    const onAbort = () => abandon(new ChannelError("CANCELLED: the call was aborted", GrpcStatus.CANCELLED));
    entry.cleanup = () => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    if (deadlineUnixMs > 0) {
      timer = setTimeout(
        () => abandon(new ChannelError("DEADLINE_EXCEEDED: the call passed its deadline", GrpcStatus.DEADLINE_EXCEEDED)),
        Math.max(0, deadlineUnixMs - Date.now()),
      );
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  }

  /**
   * Delivers the binary result frame of `length` bytes at `start` of `bytes` (`view` over the
   * same bytes); `copy`: whether its data must be copied out (it lies in a ring slot).
   */
  deliverResult(bytes: Uint8Array, view: DataView, start: number, length: number, copy: boolean): void {
    checkResultFrame(view, start, length);
    const calls = this.#calls;
    let entry = calls[this.#callsHead];
    if (entry !== undefined && resultAnswers(bytes, view, start, entry.id)) {
      this.#advanceHead();
    } else {
      const id = resultId(bytes, view, start);
      if (this.#streams.has(id)) throw new LaneProtocolError(`a call result for stream ${JSON.stringify(id)}`);
      entry = this.#takeCall(id);
      if (entry === undefined) return;
    }
    entry.cleanup();
    entry.resolve(resultOutcome(bytes, view, start, length, copy));
  }

  /**
   * Delivers a reply frame other than a result read in place: a result or msgpack frame, or a
   * spill frame naming the region it lies in (`readSpill` reads and unlinks it).
   */
  deliverBytes(bytes: Uint8Array, readSpill: (name: string, bytes: number) => Uint8Array): void {
    if (bytes[0] === RESULT_MARKER) return this.#deliverResultBytes(bytes);
    const frame = decodeFrame(bytes);
    if (frame[0] !== FRAME_SPILL) return this.deliver(frame);
    if (typeof frame[1] !== "string" || typeof frame[2] !== "number" || frame.length !== 3) {
      throw new LaneProtocolError(`bad spill frame ${describeFrame(frame)}`);
    }
    const spilled = readSpill(frame[1], frame[2]);
    if (spilled[0] === RESULT_MARKER) return this.#deliverResultBytes(spilled);
    this.deliver(decodeFrame(spilled));
  }

  /** A result frame in bytes of its own (spilled, or copied): its data stays a view of them. */
  #deliverResultBytes(bytes: Uint8Array): void {
    this.deliverResult(bytes, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.byteLength, false);
  }

  /** Delivers a msgpack reply frame (an error, an expiry, a stream's item, end or error). */
  deliver(frame: unknown[]): void {
    const id = frame[1];
    if (typeof id !== "string") throw new LaneProtocolError(`a reply for request ${describeFrame(id)}`);
    const kind = frame[0];
    const stream = this.#streams.get(id);
    if (stream === undefined) {
      const entry = this.#takeCall(id);
      if (entry === undefined) return;
      entry.cleanup();
      if (kind === RESP.expired) {
        entry.reject(
          new ChannelError("RESOURCE_EXHAUSTED: the call waited in the worker's queue past its budget and never ran", GrpcStatus.RESOURCE_EXHAUSTED, {
            notStarted: "queue-expired",
          }),
        );
      } else if (kind === RESP.error && frame[2] instanceof Uint8Array) {
        entry.resolve({ ok: false, error: this.#decoders.executeResponse(frame[2]).error });
      } else {
        throw new LaneProtocolError(`frame ${describeFrame(frame)} is not a reply to a call`);
      }
      return;
    }
    if (kind === RESP.item && frame.length === 5) {
      stream.push({ kind: "item", data: frame[2] as Uint8Array, encoding: frame[3] as number, sequence: frame[4] as number });
    } else if (kind === RESP.end && frame.length === 3) {
      this.#streams.delete(id);
      stream.push({ kind: "end", items: frame[2] as number });
    } else if (kind === RESP.streamError && frame[2] instanceof Uint8Array) {
      this.#streams.delete(id);
      stream.push({ kind: "error", error: this.#decoders.streamChunk(frame[2]).error });
    } else {
      throw new LaneProtocolError(`frame ${describeFrame(frame)} is not a reply to a stream`);
    }
  }

  /**
   * Fails every call and stream. With `unstarted`, calls the worker never started fail with it
   * instead (the pool runs them elsewhere).
   */
  failAll(error: ChannelError, unstarted?: ChannelError): void {
    if (this.#queueTimer !== undefined) clearTimeout(this.#queueTimer);
    const calls = this.#calls.slice(this.#callsHead) as PendingCall[];
    const streams = [...this.#streams.values()];
    this.#calls.length = 0;
    this.#callsHead = 0;
    this.#streams.clear();
    for (const entry of calls) {
      entry.cleanup();
      entry.reject(unstarted && !this.started(entry) ? unstarted : error);
    }
    for (const entry of streams) entry.fail(error);
  }

  /** The call reply `id` is for, removed; undefined for a late reply to an abandoned call. */
  #takeCall(id: string): PendingCall | undefined {
    const calls = this.#calls;
    for (let at = this.#callsHead; at < calls.length; at++) {
      const entry = calls[at]!;
      if (entry.id !== id) continue;
      if (at === this.#callsHead) this.#advanceHead();
      else calls.splice(at, 1);
      return entry;
    }
    if (this.#tombstones.delete(id)) return undefined;
    throw new LaneProtocolError(`a reply for unknown request ${JSON.stringify(id)}`);
  }

  /** Whether `entry` still waits for its reply. */
  #waiting(entry: PendingCall): boolean {
    return this.#calls.indexOf(entry, this.#callsHead) >= 0;
  }

  /** Drops the oldest call; compacts the queue once enough spent entries precede its head. */
  #advanceHead(): void {
    const calls = this.#calls;
    calls[this.#callsHead] = undefined;
    this.#callsHead += 1;
    if (this.#callsHead === calls.length) {
      calls.length = 0;
      this.#callsHead = 0;
    } else if (this.#callsHead >= SPENT_CALLS_MAX) {
      calls.splice(0, this.#callsHead);
      this.#callsHead = 0;
    }
  }

  #tombstone(id: string): void {
    this.#tombstones.add(id);
    if (this.#tombstones.size > TOMBSTONES_MAX) {
      this.#tombstones.delete(this.#tombstones.values().next().value as string);
    }
  }

  #armQueueTimer(at: number): void {
    if (this.#queueTimer !== undefined) clearTimeout(this.#queueTimer);
    this.#queueTimerAt = at;
    this.#queueTimer = setTimeout(() => this.#expireQueued(), Math.max(0, at - Date.now()));
  }

  /** Fails the watched calls past their queue deadline that the worker has not started. */
  #expireQueued(): void {
    this.#queueTimer = undefined;
    const now = Date.now();
    let next = Infinity;
    // The deadline lives on the entry (no second map to keep in step per call); a dozen or so
    // calls are pending at most, so the walk is short.
    for (const entry of this.#calls.slice(this.#callsHead) as PendingCall[]) {
      if (entry.queueDeadline === 0) continue;
      const deadline = entry.queueDeadline;
      if (this.started(entry)) {
        entry.queueDeadline = 0;
      } else if (deadline <= now) {
        this.forgetCall(entry);
        entry.cleanup();
        entry.reject(new ChannelError("RESOURCE_EXHAUSTED: the call waited in the worker's queue past its budget", GrpcStatus.RESOURCE_EXHAUSTED, {
          notStarted: "queue-expired",
        }));
      } else {
        next = Math.min(next, deadline);
      }
    }
    if (next !== Infinity) this.#armQueueTimer(next);
  }
}
