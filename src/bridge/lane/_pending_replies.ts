/**
 * The fast lane's calls and streams waiting for replies, matched by request id; the ids of
 * abandoned calls whose late replies are dropped quietly; and one timer for the queue deadlines
 * of calls waiting in the ring behind others.
 *
 * @module
 */
import { GrpcStatus } from "../../errors/snakepit_error.ts";
import { replyDecoders } from "../_proto.ts";
import { ChannelError, type WireOutcome, type WireStreamEvent } from "../transport.ts";
import { decodeFrame, describeFrame } from "./_msgpack_frames.ts";
import { decodeResultFrame, FRAME_SPILL, LaneProtocolError, RESP, RESULT_MARKER, type ResultFrame } from "./ring.ts";

/** Ids of abandoned calls whose late replies are dropped quietly (oldest forgotten first). */
const TOMBSTONES_MAX = 4096;

/** A call waiting for its reply. */
export interface PendingCall {
  kind: "call";
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

type Pending = PendingCall | PendingStream;

/** Replies awaited by request id. */
export class PendingReplies {
  readonly #pending = new Map<string, Pending>();
  readonly #tombstones = new Set<string>();
  readonly #decoders = replyDecoders();
  #queueTimer: ReturnType<typeof setTimeout> | undefined;
  #queueTimerAt = 0;

  /**
   * @param started whether the worker has started (or dropped) a call
   */
  constructor(readonly started: (entry: PendingCall) => boolean) {}

  get size(): number {
    return this.#pending.size;
  }

  get(id: string): Pending | undefined {
    return this.#pending.get(id);
  }

  add(id: string, entry: Pending): void {
    this.#pending.set(id, entry);
  }

  /** Removes a call that failed before it was sent. */
  remove(id: string): void {
    this.#pending.delete(id);
  }

  /** Gives up on `id`: a late reply to it is dropped, not a protocol error. */
  forget(id: string): void {
    this.remove(id);
    this.#tombstones.add(id);
    if (this.#tombstones.size > TOMBSTONES_MAX) {
      this.#tombstones.delete(this.#tombstones.values().next().value as string);
    }
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
   * Arms call `id`'s deadline timer and abort listener (its cleanup disarms them): either ends
   * the call with a ChannelError, forgets it, and runs `cancelRemote`.
   */
  guard(id: string, entry: PendingCall, deadlineUnixMs: number, signal: AbortSignal | undefined, cancelRemote: () => void): void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const abandon = (error: ChannelError) => {
      if (this.#pending.get(id) !== entry) return;
      this.forget(id);
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

  /** Delivers a binary result frame. */
  deliverResult(result: ResultFrame): void {
    const entry = this.#take(result.id);
    if (entry === undefined) return;
    if (entry.kind !== "call") throw new LaneProtocolError(`a call result for stream ${JSON.stringify(result.id)}`);
    this.remove(result.id);
    entry.cleanup();
    entry.resolve({
      ok: true,
      data: result.data,
      encoding: result.encoding,
      timing: { decodeNs: result.decodeNs, executeNs: result.executeNs, encodeNs: result.encodeNs },
    });
  }

  /**
   * Delivers a reply frame other than a result read in place: a result or msgpack frame, or a
   * spill frame naming the region it lies in (`readSpill` reads and unlinks it).
   */
  deliverBytes(bytes: Uint8Array, readSpill: (name: string, bytes: number) => Uint8Array): void {
    if (bytes[0] === RESULT_MARKER) return this.deliverResult(decodeResultFrame(bytes));
    const frame = decodeFrame(bytes);
    if (frame[0] !== FRAME_SPILL) return this.deliver(frame);
    if (typeof frame[1] !== "string" || typeof frame[2] !== "number" || frame.length !== 3) {
      throw new LaneProtocolError(`bad spill frame ${describeFrame(frame)}`);
    }
    const spilled = readSpill(frame[1], frame[2]);
    if (spilled[0] === RESULT_MARKER) return this.deliverResult(decodeResultFrame(spilled));
    this.deliver(decodeFrame(spilled));
  }

  /** Delivers a msgpack reply frame (an error, an expiry, a stream's item, end or error). */
  deliver(frame: unknown[]): void {
    const id = frame[1];
    const entry = typeof id === "string" ? this.#take(id) : undefined;
    if (entry === undefined) {
      if (typeof id !== "string") throw new LaneProtocolError(`a reply for request ${describeFrame(id)}`);
      return;
    }
    const kind = frame[0];
    if (entry.kind === "call") {
      this.remove(id as string);
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
      entry.push({ kind: "item", data: frame[2] as Uint8Array, encoding: frame[3] as number, sequence: frame[4] as number });
    } else if (kind === RESP.end && frame.length === 3) {
      this.remove(id as string);
      entry.push({ kind: "end", items: frame[2] as number });
    } else if (kind === RESP.streamError && frame[2] instanceof Uint8Array) {
      this.remove(id as string);
      entry.push({ kind: "error", error: this.#decoders.streamChunk(frame[2]).error });
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
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const entry of pending) {
      if (entry.kind === "call") {
        entry.cleanup();
        entry.reject(unstarted && !this.started(entry) ? unstarted : error);
      } else {
        entry.fail(error);
      }
    }
  }

  /** The entry a reply is for; undefined for a late reply to an abandoned call. */
  #take(id: string): Pending | undefined {
    const entry = this.#pending.get(id);
    if (entry !== undefined) return entry;
    if (this.#tombstones.delete(id)) return undefined;
    throw new LaneProtocolError(`a reply for unknown request ${JSON.stringify(id)}`);
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
    for (const [id, entry] of this.#pending) {
      if (entry.kind !== "call" || entry.queueDeadline === 0) continue;
      const deadline = entry.queueDeadline;
      if (this.started(entry)) {
        entry.queueDeadline = 0;
      } else if (deadline <= now) {
        this.forget(id);
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
