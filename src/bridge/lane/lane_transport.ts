/**
 * The fast lane: a `WorkerTransport` over shared-memory rings (`ring.ts`), for workers on this
 * host. Ping, describe and out-of-band cancel use the worker's gRPC channel (the control plane).
 * While calls are out the lane is polled (`_poller.ts`) for a spin budget (shorter while spins
 * keep failing: `_adaptive_spin.ts`), then it parks: the worker, publishing a reply, sees the
 * "host parked" flag and writes a doorbell byte on its protocol pipe. An idle lane costs nothing.
 *
 * @module
 */
import { GrpcStatus } from "../../errors/snakepit_error.ts";
import {
  ChannelError,
  type OutboundBlob,
  type PingInfo,
  type WireOutcome,
  type WireRequest,
  type WireStreamEvent,
  type WorkerDescription,
  type WorkerTransport,
} from "../transport.ts";
import { encodeFrame } from "./_msgpack_frames.ts";
import { type PendingCall, PendingReplies } from "./_pending_replies.ts";
import { AdaptiveSpin } from "./_adaptive_spin.ts";
import type { LaneEnvironment } from "./_lane_environment.ts";
import { keepPolling, stopPolling } from "./_poller.ts";
import { encodeCallFrame, FRAME_SPILL, type LaneLayout, LaneProtocolError, OFF, REQ, RESULT_MARKER, SLOT_HEADER_BYTES } from "./ring.ts";

export type { LaneEnvironment } from "./_lane_environment.ts";
const NO_CLEANUP = (): void => {}; // The cleanup of a call with nothing to disarm.

/** Stream items the worker may send ahead of the consumer. */
export const STREAM_CREDIT_WINDOW = 16;
/** A `WorkerTransport` over the fast lane's shared-memory rings. */
export class FastLaneTransport implements WorkerTransport {
  readonly kind = "fast-lane" as const;
  readonly #env: LaneEnvironment;
  readonly #layout: LaneLayout;
  readonly #pending = new PendingReplies((entry) => this.#started(entry));
  readonly #backlog: Array<{ frame: Uint8Array; entry: PendingCall | undefined }> = [];
  readonly #spin: AdaptiveSpin;
  readonly #readSpill = (name: string, bytes: number) => this.#env.readSpill(name, bytes);
  #requestHead: number;
  #responseTail: number;
  #spinUntil = 0;
  #sent = false; // A frame went out since the last poll: the spin budget restarts there.
  #parked = false;
  /** The last poll found nothing: a reply found now is one a spin waited for. */
  #waiting = false;
  #closed: ChannelError | undefined;

  constructor(env: LaneEnvironment) {
    this.#env = env;
    this.#layout = env.layout;
    this.#requestHead = this.#layout.load(OFF.reqHead);
    this.#responseTail = this.#layout.load(OFF.respTail);
    this.#spin = new AdaptiveSpin(env.spinUs / 1000);
  }

  /** Calls and streams waiting for replies. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  execute(request: WireRequest, signal?: AbortSignal): Promise<WireOutcome> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(new ChannelError("CANCELLED: aborted before sending", GrpcStatus.CANCELLED));
    return new Promise<WireOutcome>((resolve, reject) => {
      const id = request.requestId;
      const entry: PendingCall = { kind: "call", id, index: undefined, queueDeadline: 0, resolve, reject, cleanup: NO_CLEANUP };
      this.#pending.addCall(entry);
      // Behind other calls, this one waits in the ring: its queue deadline is watched.
      if (request.queueDeadlineUnixMs > 0 && this.#pending.size > 1) {
        this.#pending.watchQueueDeadline(entry, request.queueDeadlineUnixMs);
      }
      // A call with neither a deadline nor a signal (the common case) needs no closures.
      if (request.deadlineUnixMs > 0 || signal) {
        this.#pending.guard(entry, request.deadlineUnixMs, signal, () => this.#cancelRemote(id));
      }
      try {
        if (this.#sendCall(request, entry)) return;
        const freeSpill = this.#send(encodeCallFrame(request, false), entry);
        if (freeSpill) {
          const disarm = entry.cleanup;
          entry.cleanup = () => {
            disarm();
            freeSpill();
          };
        }
      } catch (error) {
        this.#pending.removeCall(entry);
        entry.cleanup();
        reject(error as Error);
      }
    });
  }

  async *stream(request: WireRequest, signal?: AbortSignal): AsyncIterable<WireStreamEvent> {
    if (this.#closed) throw this.#closed;
    if (signal?.aborted) throw new ChannelError("CANCELLED: aborted before sending", GrpcStatus.CANCELLED);
    const id = request.requestId;
    const events: WireStreamEvent[] = [];
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const notify = () => {
      const waiting = wake;
      wake = undefined;
      waiting?.();
    };
    this.#pending.addStream(id, {
      kind: "stream",
      push: (event) => {
        events.push(event);
        notify();
      },
      fail: (error) => {
        failure = error;
        notify();
      },
    });
    const onAbort = () => {
      failure ??= new ChannelError("CANCELLED: the stream was aborted", GrpcStatus.CANCELLED);
      notify();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (request.deadlineUnixMs > 0) {
      timer = setTimeout(() => {
        failure ??= new ChannelError("DEADLINE_EXCEEDED: the stream passed its deadline", GrpcStatus.DEADLINE_EXCEEDED);
        notify();
      }, Math.max(0, request.deadlineUnixMs - Date.now()));
    }
    let finished = false;
    let freeSpill: (() => void) | undefined;
    try {
      freeSpill = this.#send(encodeCallFrame(request, true));
      this.#send(encodeFrame([REQ.credit, id, STREAM_CREDIT_WINDOW]));
      let consumed = 0;
      while (true) {
        while (events.length === 0 && failure === undefined) {
          await new Promise<void>((resolve) => (wake = resolve));
        }
        if (failure !== undefined && events.length === 0) throw failure;
        if (failure !== undefined && !(failure instanceof ChannelError && failure.grpcStatus === GrpcStatus.UNAVAILABLE)) {
          throw failure; // Aborted or past the deadline: stop now, items queued or not.
        }
        const event = events.shift()!;
        if (event.kind !== "item") {
          finished = true;
          yield event;
          return;
        }
        yield event;
        consumed += 1;
        if (consumed >= STREAM_CREDIT_WINDOW / 2 && !this.#closed) {
          this.#send(encodeFrame([REQ.credit, id, consumed]));
          consumed = 0;
        }
      }
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      freeSpill?.();
      if (this.#pending.hasStream(id)) {
        this.#pending.forgetStream(id);
        // A consumer that stops early (break, throw, abort) cancels the worker's generator.
        if (!finished) this.#cancelRemote(id);
      }
    }
  }

  ping(timeoutMs: number): Promise<PingInfo> {
    return this.#env.control.ping(timeoutMs);
  }

  describe(timeoutMs: number): Promise<WorkerDescription> {
    return this.#env.control.describe(timeoutMs);
  }

  /** Cancels over the lane (a call not yet read never runs) and over gRPC (a running one). */
  cancel(requestId: string, timeoutMs: number): Promise<boolean> {
    if (!this.#closed) {
      try {
        this.#send(encodeFrame([REQ.cancel, requestId]));
      } catch {
        // A broken lane already failed the call; the gRPC cancel below still reaches Python.
      }
    }
    return this.#env.control.cancel(requestId, timeoutMs);
  }

  /** Blobs (the chunked copy path) travel over the control channel. */
  putBlob(blob: OutboundBlob, deadlineUnixMs: number, signal?: AbortSignal): Promise<void> {
    return this.#env.control.putBlob(blob, deadlineUnixMs, signal);
  }

  getBlob(id: string, bytes: number, deadlineUnixMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    return this.#env.control.getBlob(id, bytes, deadlineUnixMs, signal);
  }

  close(): void {
    if (this.#closed) return;
    this.#fail(new ChannelError("UNAVAILABLE: the worker's fast lane closed", GrpcStatus.UNAVAILABLE), true);
    this.#env.control.close();
    this.#env.release();
  }

  /** The worker rang the doorbell: read what it published. */
  doorbell(): void {
    if (this.#closed) return;
    this.#parked = false;
    const now = performance.now();
    this.#spinUntil = now + this.#spin.budgetMs;
    this.poll(now);
  }

  /**
   * One poller turn: reads published replies; returns whether the lane should keep spinning
   * (false once it is idle or parked).
   */
  poll(now: number): boolean {
    if (this.#closed) return false;
    try {
      if (this.#sent) {
        this.#sent = false;
        this.#spinUntil = now + this.#spin.budgetMs;
      }
      if (this.#drain()) {
        if (this.#waiting) this.#spin.caught();
        this.#waiting = false;
        this.#spinUntil = now + this.#spin.budgetMs;
      } else {
        this.#waiting = true;
      }
      if (this.#pending.size === 0 && this.#backlog.length === 0) return false;
      if (now < this.#spinUntil) {
        keepPolling(this);
        return true;
      }
      // Park: raise the flag, then look once more (a reply published before the flag was seen
      // would ring no doorbell).
      this.#parked = true;
      this.#layout.store(OFF.hostParked, 1);
      if (this.#drain()) {
        this.#layout.store(OFF.hostParked, 0);
        this.#parked = false;
        this.#spinUntil = now + this.#spin.budgetMs;
        keepPolling(this);
        return true;
      }
      // A reply the doorbell brings is not one the spin caught.
      this.#waiting = false;
      this.#spin.parked();
      return false;
    } catch (error) {
      this.#broken(error);
      return false;
    }
  }

  #activate(): void {
    // The spin restarts from the next poll's clock reading (on Deno a read is a runtime call).
    this.#spinUntil = 0;
    this.#sent = true;
    if (this.#parked) {
      this.#parked = false;
      this.#layout.store(OFF.hostParked, 0);
    }
    keepPolling(this);
  }

  /**
   * Sends a frame (spilling it when it exceeds a slot); returns the spill's free function. A
   * call's entry learns the frame's ring index when it is published.
   */
  #send(frame: Uint8Array, entry?: PendingCall): (() => void) | undefined {
    let free: (() => void) | undefined;
    let slotFrame = frame;
    if (frame.byteLength > this.#layout.capacity) {
      const spilled = this.#env.spill(frame);
      free = spilled.free;
      slotFrame = encodeFrame([FRAME_SPILL, spilled.name, frame.byteLength]);
    }
    if (this.#mustQueue()) {
      this.#backlog.push({ frame: slotFrame.slice(), entry });
    } else {
      if (entry) entry.index = this.#requestHead;
      this.#layout.writeRequest(this.#requestHead, slotFrame);
      this.#advanceRequestHead();
    }
    this.#activate();
    return free;
  }

  /**
   * The common case of sending a call: encoded straight into the next request slot. False when
   * that cannot be done (calls wait in the backlog, the ring is full, or the frame may not fit a
   * slot); the caller then takes `#send`.
   */
  #sendCall(request: WireRequest, entry: PendingCall): boolean {
    if (this.#mustQueue() || !this.#layout.writeCall(this.#requestHead, request, false)) return false;
    entry.index = this.#requestHead;
    this.#advanceRequestHead();
    this.#activate();
    return true;
  }

  /** Whether a frame must wait in the backlog (others wait there, or the ring is full). */
  #mustQueue(): boolean {
    return this.#backlog.length > 0 || ((this.#requestHead - this.#layout.load(OFF.reqTail)) >>> 0) >= this.#layout.slotCount;
  }

  #advanceRequestHead(): void {
    const layout = this.#layout;
    this.#requestHead = (this.#requestHead + 1) >>> 0;
    layout.store(OFF.reqHead, this.#requestHead);
    if (Atomics.exchange(layout.words, OFF.reqParked >>> 2, 0) !== 0) this.#env.wakeWord(OFF.reqHead);
  }

  #flushBacklog(): void {
    const layout = this.#layout;
    const backlog = this.#backlog;
    let sent = 0;
    const tail = layout.load(OFF.reqTail);
    while (sent < backlog.length && ((this.#requestHead - tail) >>> 0) < layout.slotCount) {
      const { frame, entry } = backlog[sent]!;
      if (entry) entry.index = this.#requestHead;
      this.#layout.writeRequest(this.#requestHead, frame);
      this.#advanceRequestHead();
      sent += 1;
    }
    backlog.splice(0, sent);
  }

  /**
   * Reads every published reply; true when there was any. Results are delivered where they lie
   * (data copied out); any other frame, and all after it, are copied and delivered in order.
   */
  #drain(): boolean {
    const layout = this.#layout;
    if (this.#backlog.length > 0) this.#flushBacklog();
    const head = layout.load(OFF.respHead);
    let index = this.#responseTail;
    if (head === index) return false;
    if (((head - index) >>> 0) > layout.slotCount) {
      throw new LaneProtocolError(`response head ${head} is more than ${layout.slotCount} frames past ${index}`);
    }
    const bytes = layout.bytes;
    const view = layout.view;
    let others: Uint8Array[] | undefined;
    while (index !== head) {
      const length = layout.checkResponse(index);
      const start = layout.responseSlot(index) + SLOT_HEADER_BYTES;
      // Replies keep their order: a broken frame fails the calls whose replies follow it.
      if (others === undefined && bytes[start] === RESULT_MARKER) this.#pending.deliverResult(bytes, view, start, length, true);
      else (others ??= []).push(bytes.slice(start, start + length));
      index = (index + 1) >>> 0;
    }
    this.#responseTail = index;
    layout.store(OFF.respTail, index);
    if (Atomics.exchange(layout.words, OFF.respSpaceParked >>> 2, 0) !== 0) this.#env.wakeWord(OFF.respTail);
    if (others !== undefined) {
      for (const frame of others) this.#pending.deliverBytes(frame, this.#readSpill);
    }
    return true;
  }

  /** Whether the worker has started (or dropped) the call: its frame is below the counter. */
  #started(entry: PendingCall): boolean {
    if (entry.index === undefined) return false;
    return ((entry.index - this.#layout.load(OFF.reqStarted)) >>> 0) >= 0x8000_0000;
  }

  /** Tells the worker an abandoned call is off (both ways, as `cancel` does). */
  #cancelRemote(id: string): void {
    if (!this.#closed) this.cancel(id, 1000).catch(() => {});
  }

  #broken(error: unknown): void {
    const reason = error instanceof LaneProtocolError ? error : new LaneProtocolError(String((error as Error)?.message ?? error));
    this.#fail(new ChannelError(`INTERNAL: ${reason.message}; the worker is being replaced`, GrpcStatus.INTERNAL, { cause: reason }));
    this.#env.onBroken(reason);
  }

  /**
   * Fails every pending call and stream. With `requeueUnstarted`, calls the worker never started
   * (still in the backlog, or in the ring past its started counter) fail as `worker-gone`, so the
   * pool runs them elsewhere.
   */
  #fail(error: ChannelError, requeueUnstarted = false): void {
    if (this.#closed) return;
    this.#closed = error;
    stopPolling(this);
    this.#backlog.length = 0;
    const unstarted = new ChannelError("UNAVAILABLE: the worker exited before starting the call", GrpcStatus.UNAVAILABLE, {
      notStarted: "worker-gone",
    });
    this.#pending.failAll(error, requeueUnstarted ? unstarted : undefined);
  }
}
