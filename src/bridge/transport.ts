/**
 * The seam between the pool and a worker: one interface, implemented by the gRPC transport and
 * by the shared-memory fast lane (`lane/`), with the same semantics.
 *
 * @module
 */

/** One call as it goes on the wire. */
export interface WireRequest {
  requestId: string;
  tool: string;
  /** Encoded keyword arguments. */
  args: Uint8Array;
  /** Wire encoding number (1 msgpack, 2 json). */
  encoding: number;
  sessionId: string;
  /** Absolute deadline in Unix ms; 0 for none. */
  deadlineUnixMs: number;
  /**
   * Unix ms past which the call must not start (its queue-wait budget): a call pipelined in a
   * worker's fast-lane ring is dropped unrun past it. 0 for none.
   */
  queueDeadlineUnixMs: number;
  correlationId: string;
  traceparent: string;
  /**
   * Values too big for one message that travel beside the call (the chunked copy path): each is
   * uploaded to the worker before the call is sent, and the payload names it by id.
   */
  blobs?: OutboundBlob[];
}

/** A blob to upload before its call: its id (the request id, a dot, a serial) and bytes. */
export interface OutboundBlob {
  id: string;
  data: Uint8Array;
}

/** Where the worker spent a call's time, in nanoseconds. */
export interface WorkerTiming {
  decodeNs: number;
  executeNs: number;
  encodeNs: number;
}

/** The worker's answer: an encoded result or a structured error payload. */
export type WireOutcome =
  | { ok: true; data: Uint8Array; encoding: number; timing: WorkerTiming }
  | { ok: false; error: unknown };

/** One event of a streamed call. */
export type WireStreamEvent =
  | { kind: "item"; data: Uint8Array; encoding: number; sequence: number }
  | { kind: "error"; error: unknown }
  | { kind: "end"; items: number };

/** The worker's answer to a ping. */
export interface PingInfo {
  pid: number;
  rssBytes: number;
  uptimeMs: number;
  inFlight: number;
  callsServed: number;
}

/** A tool as the worker describes it. */
export interface ToolDescription {
  name: string;
  doc: string;
  signature: string;
  parameters: Array<{ name: string; kind: string; annotation: string; required: boolean; defaultRepr: string }>;
  returns: string;
  streaming: boolean;
  isAsync: boolean;
}

/** What a worker can do. */
export interface WorkerCapabilities {
  protocolVersion: number;
  encodings: string[];
  zeroCopy: boolean;
  maxMessageBytes: number;
  maxConcurrency: number;
  threadSafe: boolean;
  nativeAbiVersion: number;
}

/** A worker's self-description. */
export interface WorkerDescription {
  pid: number;
  workerId: string;
  adapter: string;
  pythonVersion: string;
  tools: ToolDescription[];
  capabilities: WorkerCapabilities;
}

/**
 * A failure of the channel itself (not of the tool): carries the gRPC status so the caller can
 * tell a deadline from a dead peer.
 */
export class ChannelError extends Error {
  /**
   * Set when the worker never started the call: it waited in the worker's ring past its queue
   * deadline (`"queue-expired"`), or the worker exited before reaching it (`"worker-gone"`,
   * safe to run elsewhere whatever the tool does).
   */
  readonly notStarted: "queue-expired" | "worker-gone" | undefined;

  constructor(
    message: string,
    readonly grpcStatus: number,
    options?: { cause?: unknown; notStarted?: "queue-expired" | "worker-gone" },
  ) {
    super(message, options);
    this.name = "ChannelError";
    this.notStarted = options?.notStarted;
  }
}

/** How the pool talks to one worker. */
export interface WorkerTransport {
  /** Which implementation this is. */
  readonly kind: "fast-lane" | "grpc";
  /** Runs a call; rejects with `ChannelError` when the channel fails or `signal` aborts. */
  execute(request: WireRequest, signal?: AbortSignal): Promise<WireOutcome>;
  /** Runs a streaming call; iteration applies backpressure; `signal` cancels it. */
  stream(request: WireRequest, signal?: AbortSignal): AsyncIterable<WireStreamEvent>;
  ping(timeoutMs: number): Promise<PingInfo>;
  describe(timeoutMs: number): Promise<WorkerDescription>;
  /** Asks the worker to cancel a running call; resolves whether it was found. */
  cancel(requestId: string, timeoutMs: number): Promise<boolean>;
  /**
   * Uploads a blob in chunks (over gRPC whatever the call's transport); rejects with
   * `ChannelError`. `deadlineUnixMs` 0 means none.
   */
  putBlob(blob: OutboundBlob, deadlineUnixMs: number, signal?: AbortSignal): Promise<void>;
  /** Downloads (and so frees) a blob of `bytes` bytes that a result named. */
  getBlob(id: string, bytes: number, deadlineUnixMs: number, signal?: AbortSignal): Promise<Uint8Array>;
  close(): void;
}
