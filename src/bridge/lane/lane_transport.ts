/**
 * The fast lane: a `WorkerTransport` over shared-memory rings, for workers on this host.
 *
 * Calls, streams and cancels travel as frames in the lane's rings (see `ring.ts`); ping,
 * describe and out-of-band cancel use the worker's gRPC channel (the control plane), which also
 * reaches a tool running on the worker's lane thread.
 *
 * Waiting for replies: while calls are out, a poller checks the response rings on every turn
 * of the event loop (`setImmediate`, so timers and I/O still run) for a spin budget; then the
 * lane parks: it raises its "host parked" flag and the worker, when it publishes a reply, writes
 * a byte on its protocol pipe (the doorbell), which the event loop delivers. An idle lane costs
 * nothing; the worker side spins, then parks on a futex.
 *
 * @module
 */
import { Packr, Unpackr } from "msgpackr";
import { GrpcStatus } from "../../errors/snakepit_error.ts";
import { replyDecoders } from "../_proto.ts";
import {
  ChannelError,
  type PingInfo,
  type WireOutcome,
  type WireRequest,
  type WireStreamEvent,
  type WorkerDescription,
  type WorkerTransport,
} from "../transport.ts";
import {
  decodeResultFrame,
  encodeCallFrame,
  FRAME_SPILL,
  LaneLayout,
  LaneProtocolError,
  OFF,
  REQ,
  RESP,
  RESULT_MARKER,
  type ResultFrame,
} from "./ring.ts";

/** Stream items the worker may send ahead of the consumer. */
export const STREAM_CREDIT_WINDOW = 16;
/** Ids of abandoned calls whose late replies are dropped quietly (oldest forgotten first). */
const TOMBSTONES_MAX = 4096;

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

/** What the lane needs from the native library and the worker's control channel. */
export interface LaneEnvironment {
  /** The initialized lane region's payload. */
  layout: LaneLayout;
  /** Wakes every waiter parked on the lane word at `offset` (a futex wake). */
  wakeWord(offset: number): void;
  /** Puts `frame` in a region of its own; returns its name and the function that frees it. */
  spill(frame: Uint8Array): { name: string; free: () => void };
  /** Reads (a copy of) the first `bytes` of region `name` and unlinks it. */
  readSpill(name: string, bytes: number): Uint8Array;
  /** The gRPC transport of the same worker (ping, describe, out-of-band cancel). */
  control: WorkerTransport;
  /** Host spin budget before parking, in microseconds. */
  spinUs: number;
  /** Frees the lane region (after the transport is closed). */
  release(): void;
  /** Called once when the lane breaks the protocol: the worker must be replaced. */
  onBroken(error: LaneProtocolError): void;
}

interface PendingCall {
  kind: "call";
  /** Unix ms past which, unstarted, it fails as queue-expired; 0 when not watched. */
  queueDeadline: number;
  /** The request frame's index in the ring, once published (undefined in the backlog). */
  index: number | undefined;
  resolve: (outcome: WireOutcome) => void;
  reject: (error: Error) => void;
  cleanup: () => void;
}

interface PendingStream {
  kind: "stream";
  push: (event: WireStreamEvent) => void;
  fail: (error: Error) => void;
}

type Pending = PendingCall | PendingStream;

// --- the poller: one per process, across every lane --------------------------------------

const spinning = new Set<FastLaneTransport>();
let scheduled = false;

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(pollTurn);
}

function pollTurn(): void {
  scheduled = false;
  const now = performance.now();
  for (const lane of spinning) {
    if (!lane.poll(now)) spinning.delete(lane);
  }
  if (spinning.size > 0) schedule();
}

/** A `WorkerTransport` over the fast lane's shared-memory rings. */
export class FastLaneTransport implements WorkerTransport {
  readonly kind = "fast-lane" as const;
  readonly #env: LaneEnvironment;
  readonly #layout: LaneLayout;
  readonly #pending = new Map<string, Pending>();
  readonly #tombstones = new Set<string>();
  readonly #queueWatched = new Map<string, PendingCall>();
  #queueTimer: ReturnType<typeof setTimeout> | undefined;
  #queueTimerAt = 0;
  readonly #backlog: Array<{ frame: Uint8Array; entry: PendingCall | undefined }> = [];
  readonly #spinMs: number;
  readonly #decoders = replyDecoders();
  #requestHead: number;
  #responseTail: number;
  #spinUntil = 0;
  #parked = false;
  #closed: ChannelError | undefined;

  constructor(env: LaneEnvironment) {
    this.#env = env;
    this.#layout = env.layout;
    this.#requestHead = this.#layout.load(OFF.reqHead);
    this.#responseTail = this.#layout.load(OFF.respTail);
    this.#spinMs = env.spinUs / 1000;
  }

  /** Calls and streams waiting for replies. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  execute(request: WireRequest, signal?: AbortSignal): Promise<WireOutcome> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(new ChannelError("CANCELLED: aborted before sending", GrpcStatus.CANCELLED));
    const id = request.requestId;
    const frame = encodeCallFrame(request, false);
    return new Promise<WireOutcome>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let freeSpill: (() => void) | undefined;
      const abandon = (error: ChannelError) => {
        if (this.#pending.get(id) !== entry) return;
        this.#forget(id);
        this.#cancelRemote(id);
        entry.cleanup();
        reject(error);
      };
      const onAbort = () => abandon(new ChannelError("CANCELLED: the call was aborted", GrpcStatus.CANCELLED));
      const entry: PendingCall = {
        kind: "call",
        queueDeadline: 0,
        index: undefined,
        resolve,
        reject,
        cleanup: () => {
          if (timer !== undefined) clearTimeout(timer);
          if (entry.queueDeadline !== 0) this.#queueWatched.delete(id);
          signal?.removeEventListener("abort", onAbort);
          freeSpill?.();
        },
      };
      // Behind other calls, this one waits in the ring: past its queue deadline, if the worker
      // has not started it, it fails now (the worker, reaching it later, drops it unrun: it checks
      // the same deadline after counting it started, so the two never disagree).
      this.#pending.set(id, entry);
      if (request.queueDeadlineUnixMs > 0 && this.#pending.size > 1) this.#watchQueue(id, entry, request.queueDeadlineUnixMs);
      if (request.deadlineUnixMs > 0) {
        timer = setTimeout(
          () => abandon(new ChannelError("DEADLINE_EXCEEDED: the call passed its deadline", GrpcStatus.DEADLINE_EXCEEDED)),
          Math.max(0, request.deadlineUnixMs - Date.now()),
        );
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        freeSpill = this.#send(frame, entry);
      } catch (error) {
        this.#pending.delete(id);
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
    this.#pending.set(id, {
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
      this.#send(packr.pack([REQ.credit, id, STREAM_CREDIT_WINDOW]));
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
          this.#send(packr.pack([REQ.credit, id, consumed]));
          consumed = 0;
        }
      }
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      freeSpill?.();
      if (this.#pending.get(id)?.kind === "stream") {
        this.#forget(id);
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
        this.#send(packr.pack([REQ.cancel, requestId]));
      } catch {
        // A broken lane already failed the call; the gRPC cancel below still reaches Python.
      }
    }
    return this.#env.control.cancel(requestId, timeoutMs);
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
    this.#spinUntil = performance.now() + this.#spinMs;
    this.poll(this.#spinUntil - this.#spinMs);
  }

  /**
   * One poller turn: reads published replies; returns whether the lane should keep spinning
   * (false once it is idle or parked).
   */
  poll(now: number): boolean {
    if (this.#closed) return false;
    try {
      if (this.#drain()) this.#spinUntil = now + this.#spinMs;
      if (this.#pending.size === 0 && this.#backlog.length === 0) return false;
      if (now < this.#spinUntil) {
        spinning.add(this);
        schedule();
        return true;
      }
      // Park: raise the flag, then look once more (a reply published before the flag was seen
      // would ring no doorbell).
      this.#parked = true;
      this.#layout.store(OFF.hostParked, 1);
      if (this.#drain()) {
        this.#layout.store(OFF.hostParked, 0);
        this.#parked = false;
        this.#spinUntil = now + this.#spinMs;
        spinning.add(this);
        schedule();
        return true;
      }
      return false;
    } catch (error) {
      this.#broken(error);
      return false;
    }
  }

  #activate(): void {
    this.#spinUntil = performance.now() + this.#spinMs;
    if (this.#parked) {
      this.#parked = false;
      this.#layout.store(OFF.hostParked, 0);
    }
    spinning.add(this);
    schedule();
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
      slotFrame = packr.pack([FRAME_SPILL, spilled.name, frame.byteLength]);
    }
    const layout = this.#layout;
    if (this.#backlog.length > 0 || ((this.#requestHead - layout.load(OFF.reqTail)) >>> 0) >= layout.slotCount) {
      this.#backlog.push({ frame: slotFrame.slice(), entry });
    } else {
      if (entry) entry.index = this.#requestHead;
      this.#publishRequest(slotFrame);
    }
    this.#activate();
    return free;
  }

  #publishRequest(frame: Uint8Array): void {
    const layout = this.#layout;
    layout.writeRequest(this.#requestHead, frame);
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
      this.#publishRequest(frame);
      sent += 1;
    }
    backlog.splice(0, sent);
  }

  /** Reads every published reply; true when there was any. */
  #drain(): boolean {
    const layout = this.#layout;
    if (this.#backlog.length > 0) this.#flushBacklog();
    const head = layout.load(OFF.respHead);
    let index = this.#responseTail;
    if (head === index) return false;
    if (((head - index) >>> 0) > layout.slotCount) {
      throw new LaneProtocolError(`response head ${head} is more than ${layout.slotCount} frames past ${index}`);
    }
    const frames: Array<ResultFrame | Uint8Array> = [];
    while (index !== head) {
      frames.push(layout.readResponseFrame(index));
      index = (index + 1) >>> 0;
    }
    this.#responseTail = index;
    layout.store(OFF.respTail, index);
    if (Atomics.exchange(layout.words, OFF.respSpaceParked >>> 2, 0) !== 0) this.#env.wakeWord(OFF.respTail);
    for (const frame of frames) {
      if (frame instanceof Uint8Array) this.#dispatch(frame);
      else this.#dispatchResult(frame);
    }
    return true;
  }

  #dispatch(bytes: Uint8Array): void {
    if (bytes[0] === RESULT_MARKER) return this.#dispatchResult(decodeResultFrame(bytes));
    let frame = decodeFrame(bytes);
    if (frame[0] === FRAME_SPILL) {
      if (typeof frame[1] !== "string" || typeof frame[2] !== "number") {
        throw new LaneProtocolError(`bad spill frame ${describe(frame)}`);
      }
      const spilled = this.#env.readSpill(frame[1], frame[2]);
      if (spilled[0] === RESULT_MARKER) return this.#dispatchResult(decodeResultFrame(spilled));
      frame = decodeFrame(spilled);
    }
    const id = frame[1];
    const entry = typeof id === "string" ? this.#pending.get(id) : undefined;
    if (entry === undefined) {
      if (typeof id === "string" && this.#tombstones.delete(id)) return; // A late reply to an abandoned call.
      throw new LaneProtocolError(`a reply for unknown request ${JSON.stringify(id)}`);
    }
    const kind = frame[0];
    if (entry.kind === "call") {
      this.#pending.delete(id as string);
      entry.cleanup();
      if (kind === RESP.expired) {
        entry.reject(
          new ChannelError("RESOURCE_EXHAUSTED: the call waited in the worker's queue past its budget and never ran", GrpcStatus.RESOURCE_EXHAUSTED, {
            notStarted: "queue-expired",
          }),
        );
        return;
      }
      if (kind === RESP.error && frame[2] instanceof Uint8Array) {
        entry.resolve({ ok: false, error: this.#decoders.executeResponse(frame[2]).error });
      } else {
        throw new LaneProtocolError(`frame ${describe(frame)} is not a reply to a call`);
      }
      return;
    }
    if (kind === RESP.item && frame.length === 5) {
      entry.push({ kind: "item", data: frame[2] as Uint8Array, encoding: frame[3] as number, sequence: frame[4] as number });
    } else if (kind === RESP.end && frame.length === 3) {
      this.#pending.delete(id as string);
      entry.push({ kind: "end", items: frame[2] as number });
    } else if (kind === RESP.streamError && frame[2] instanceof Uint8Array) {
      this.#pending.delete(id as string);
      entry.push({ kind: "error", error: this.#decoders.streamChunk(frame[2]).error });
    } else {
      throw new LaneProtocolError(`frame ${describe(frame)} is not a reply to a stream`);
    }
  }

  /** Whether the worker has started (or dropped) the call: its frame is below the counter. */
  #started(entry: PendingCall): boolean {
    if (entry.index === undefined) return false;
    return ((entry.index - this.#layout.load(OFF.reqStarted)) >>> 0) >= 0x8000_0000;
  }

  /** A binary result frame: the hot path, without msgpack. */
  #dispatchResult(result: ResultFrame): void {
    const entry = this.#pending.get(result.id);
    if (entry === undefined) {
      if (this.#tombstones.delete(result.id)) return; // A late reply to an abandoned call.
      throw new LaneProtocolError(`a reply for unknown request ${JSON.stringify(result.id)}`);
    }
    if (entry.kind !== "call") throw new LaneProtocolError(`a call result for stream ${JSON.stringify(result.id)}`);
    this.#pending.delete(result.id);
    entry.cleanup();
    entry.resolve({
      ok: true,
      data: result.data,
      encoding: result.encoding,
      timing: { decodeNs: result.decodeNs, executeNs: result.executeNs, encodeNs: result.encodeNs },
    });
  }

  /**
   * Watches a call that waits in the ring behind others: one timer per lane, armed at the
   * earliest queue deadline (a timer per call would cost more than the call).
   */
  #watchQueue(id: string, entry: PendingCall, queueDeadline: number): void {
    entry.queueDeadline = queueDeadline;
    this.#queueWatched.set(id, entry);
    if (this.#queueTimer === undefined || queueDeadline < this.#queueTimerAt) this.#armQueueTimer(queueDeadline);
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
    for (const [id, entry] of this.#queueWatched) {
      if (this.#pending.get(id) !== entry || this.#started(entry)) {
        this.#queueWatched.delete(id);
      } else if (entry.queueDeadline <= now) {
        this.#queueWatched.delete(id);
        this.#forget(id);
        entry.cleanup();
        entry.reject(new ChannelError("RESOURCE_EXHAUSTED: the call waited in the worker's queue past its budget", GrpcStatus.RESOURCE_EXHAUSTED, {
          notStarted: "queue-expired",
        }));
      } else {
        next = Math.min(next, entry.queueDeadline);
      }
    }
    if (next !== Infinity && !this.#closed) this.#armQueueTimer(next);
  }

  #forget(id: string): void {
    this.#pending.delete(id);
    this.#tombstones.add(id);
    if (this.#tombstones.size > TOMBSTONES_MAX) {
      this.#tombstones.delete(this.#tombstones.values().next().value as string);
    }
  }

  #cancelRemote(id: string): void {
    if (this.#closed) return;
    try {
      this.#send(packr.pack([REQ.cancel, id]));
    } catch {
      // The lane broke meanwhile; the gRPC cancel below still reaches Python.
    }
    this.#env.control.cancel(id, 1000).catch(() => {});
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
    spinning.delete(this);
    if (this.#queueTimer !== undefined) clearTimeout(this.#queueTimer);
    this.#queueWatched.clear();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#backlog.length = 0;
    const unstarted = new ChannelError("UNAVAILABLE: the worker exited before starting the call", GrpcStatus.UNAVAILABLE, {
      notStarted: "worker-gone",
    });
    for (const entry of pending) {
      if (entry.kind === "call") {
        entry.cleanup();
        entry.reject(requeueUnstarted && !this.#started(entry) ? unstarted : error);
      } else {
        entry.fail(error);
      }
    }
  }
}

function decodeFrame(bytes: Uint8Array): unknown[] {
  let frame: unknown;
  try {
    frame = unpackr.unpack(bytes);
  } catch (error) {
    throw new LaneProtocolError(`a frame is not valid msgpack (${(error as Error).message})`);
  }
  if (!Array.isArray(frame) || frame.length < 2 || typeof frame[0] !== "number") {
    throw new LaneProtocolError(`a frame is not a [kind, id, ...] array: ${describe(frame)}`);
  }
  return frame;
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, item) => item instanceof Uint8Array ? `<${item.byteLength} bytes>` : item)
      .slice(0, 120);
  } catch {
    return String(value).slice(0, 120);
  }
}
