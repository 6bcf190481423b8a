/**
 * The gRPC transport: a `@grpc/grpc-js` client over a unix socket (or TCP) to one worker.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import type { Buffer } from "node:buffer";
import { serviceClients } from "./_proto.ts";
import { decodeExecuteReply, encodeExecuteRequest } from "./_execute_wire.ts";
import { BLOB_CHUNK_BYTES, BLOB_PART_BYTES } from "./_blobs.ts";
import {
  ChannelError,
  type OutboundBlob,
  type PingInfo,
  type WireOutcome,
  type WireRequest,
  type WireStreamEvent,
  type WorkerDescription,
  type WorkerTransport,
} from "./transport.ts";

/** Blob pieces written to HTTP/2 but not yet flushed, per upload. */
const BLOB_CHUNKS_IN_FLIGHT = 4;

/** Largest message either side accepts; bulk data belongs in shared memory. */
export const GRPC_MESSAGE_BYTES_MAX = 2 ** 31 - 1;

const CHANNEL_OPTIONS = {
  "grpc.max_receive_message_length": GRPC_MESSAGE_BYTES_MAX,
  "grpc.max_send_message_length": GRPC_MESSAGE_BYTES_MAX,
  // One worker, one connection: no reconnect storms, fail fast when the worker is gone.
  "grpc.initial_reconnect_backoff_ms": 50,
  "grpc.max_reconnect_backoff_ms": 1000,
  "grpc.enable_retries": 0,
  // Blob downloads (the chunked copy path) run at full speed instead of behind a 64 KiB window.
  "grpc-node.flow_control_window": 16 * 1024 * 1024,
};

function toWireMessage(request: WireRequest): Record<string, unknown> {
  return {
    request_id: request.requestId,
    tool: request.tool,
    args: { encoding: request.encoding, data: request.args, regions: [] },
    session_id: request.sessionId,
    deadline_unix_ms: request.deadlineUnixMs,
    metadata: { correlation_id: request.correlationId, traceparent: request.traceparent, tracestate: "" },
  };
}

/** The outcome in an `ExecuteResponse` as proto-loader decodes it. */
function outcomeFromReply(reply: Wire): WireOutcome {
  if (reply.outcome === "error") return { ok: false, error: reply.error };
  return {
    ok: true,
    data: reply.result.data,
    encoding: reply.result.encoding,
    timing: {
      decodeNs: reply.timing?.decode_ns ?? 0,
      executeNs: reply.timing?.execute_ns ?? 0,
      encodeNs: reply.timing?.encode_ns ?? 0,
    },
  };
}

/** A call's options: its absolute deadline (Unix ms), 0 for none. */
function callOptions(deadlineUnixMs: number): grpc.CallOptions {
  return deadlineUnixMs > 0 ? { deadline: deadlineUnixMs } : {};
}

function channelError(error: grpc.ServiceError | Error): ChannelError {
  const code = (error as grpc.ServiceError).code ?? grpc.status.UNKNOWN;
  const details = (error as grpc.ServiceError).details ?? error.message;
  return new ChannelError(`${grpc.status[code] ?? code}: ${details}`, code, { cause: error });
}

// deno-lint-ignore no-explicit-any
type Wire = any;

/** A `WorkerTransport` over gRPC. */
export class GrpcTransport implements WorkerTransport {
  readonly kind = "grpc" as const;
  readonly #client: Wire;
  readonly #executePath: string;
  readonly #decodeReply: (bytes: Buffer) => WireOutcome;
  #closed = false;

  /**
   * @param address a gRPC target, e.g. `unix:/tmp/snakepit-x/w0.sock` or `127.0.0.1:50051`
   */
  constructor(readonly address: string) {
    const { Worker } = serviceClients();
    this.#client = new Worker(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    const execute = (Worker as Wire).service.Execute;
    this.#executePath = execute.path;
    this.#decodeReply = (bytes) => decodeExecuteReply(bytes, execute.responseDeserialize, outcomeFromReply);
  }

  execute(request: WireRequest, signal?: AbortSignal): Promise<WireOutcome> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new ChannelError("CANCELLED: aborted before sending", grpc.status.CANCELLED));
      const options = callOptions(request.deadlineUnixMs);
      // The hand-written codec (`_execute_wire.ts`): proto-loader's object conversions cost
      // several microseconds a call; replies it does not know go through proto-loader.
      const call = this.#client.makeUnaryRequest(
        this.#executePath,
        encodeExecuteRequest,
        this.#decodeReply,
        request,
        options,
        (error: grpc.ServiceError | null, outcome?: WireOutcome) => {
          signal?.removeEventListener("abort", onAbort);
          if (error) return reject(channelError(error));
          resolve(outcome!);
        },
      );
      const onAbort = () => call.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async *stream(request: WireRequest, signal?: AbortSignal): AsyncIterable<WireStreamEvent> {
    if (signal?.aborted) throw new ChannelError("CANCELLED: aborted before sending", grpc.status.CANCELLED);
    const options = callOptions(request.deadlineUnixMs);
    const call: grpc.ClientReadableStream<Wire> = this.#client.ExecuteStream(toWireMessage(request), options);
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    let finished = false;
    try {
      for await (const chunk of call) {
        if (chunk.body === "item") {
          yield { kind: "item", data: chunk.item.data, encoding: chunk.item.encoding, sequence: chunk.sequence };
        } else if (chunk.body === "error") {
          finished = true;
          yield { kind: "error", error: chunk.error };
          return;
        } else {
          finished = true;
          yield { kind: "end", items: chunk.end?.items ?? 0 };
          return;
        }
      }
    } catch (error) {
      throw channelError(error as Error);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      // A consumer that stops early (break, throw) cancels the worker's generator.
      if (!finished) call.cancel();
    }
    throw new ChannelError("INTERNAL: the stream ended without an end chunk", grpc.status.INTERNAL);
  }

  ping(timeoutMs: number): Promise<PingInfo> {
    return this.#unary("Ping", { nonce: Date.now() }, timeoutMs).then((reply) => ({
      pid: reply.pid,
      rssBytes: reply.rss_bytes,
      uptimeMs: reply.uptime_ms,
      inFlight: reply.in_flight,
      callsServed: reply.calls_served,
    }));
  }

  describe(timeoutMs: number): Promise<WorkerDescription> {
    return this.#unary("Describe", {}, timeoutMs).then((reply) => ({
      pid: reply.worker.pid,
      workerId: reply.worker.worker_id,
      adapter: reply.worker.adapter,
      pythonVersion: reply.worker.python_version,
      tools: reply.tools.map((tool: Wire) => ({
        name: tool.name,
        doc: tool.doc,
        signature: tool.signature,
        parameters: tool.parameters.map((parameter: Wire) => ({
          name: parameter.name,
          kind: parameter.kind,
          annotation: parameter.annotation,
          required: parameter.required,
          defaultRepr: parameter.default_repr,
        })),
        returns: tool.returns,
        streaming: tool.streaming,
        isAsync: tool.is_async,
      })),
      capabilities: {
        protocolVersion: reply.capabilities.protocol_version,
        encodings: reply.capabilities.encodings.map((encoding: number) => encoding === 2 ? "json" : "msgpack"),
        zeroCopy: reply.capabilities.zero_copy,
        maxMessageBytes: reply.capabilities.max_message_bytes,
        maxConcurrency: reply.capabilities.max_concurrency,
        threadSafe: reply.capabilities.thread_safe,
        nativeAbiVersion: reply.capabilities.native_abi_version,
      },
    }));
  }

  cancel(requestId: string, timeoutMs: number): Promise<boolean> {
    return this.#unary("Cancel", { request_id: requestId }, timeoutMs).then((reply) => Boolean(reply.found));
  }

  async putBlob(blob: OutboundBlob, deadlineUnixMs: number, signal?: AbortSignal): Promise<void> {
    // Blobs are never empty: the chunked-copy threshold is at least 1 byte.
    for (let offset = 0; offset < blob.data.byteLength; offset += BLOB_PART_BYTES) {
      await this.#putPart(blob, offset, deadlineUnixMs, signal);
    }
  }

  /** Uploads bytes `offset` to `offset + BLOB_PART_BYTES` of `blob` as one stream. */
  #putPart(blob: OutboundBlob, start: number, deadlineUnixMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new ChannelError("CANCELLED: aborted before sending", grpc.status.CANCELLED));
      const options = callOptions(deadlineUnixMs);
      const onAbort = () => call.cancel();
      const call: grpc.ClientWritableStream<Wire> = this.#client.PutBlob(options, (error: grpc.ServiceError | null) => {
        signal?.removeEventListener("abort", onAbort);
        error ? reject(channelError(error)) : resolve();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      const { id, data } = blob;
      const end = Math.min(data.byteLength, start + BLOB_PART_BYTES);
      let offset = start;
      let unflushed = 0;
      // A few pieces at a time are handed to HTTP/2, so it never queues a whole part.
      const pump = () => {
        while (offset < end && unflushed < BLOB_CHUNKS_IN_FLIGHT) {
          const piece = data.subarray(offset, Math.min(end, offset + BLOB_CHUNK_BYTES));
          const message = offset === start ? { blob_id: id, total_bytes: data.byteLength, offset: start, data: piece } : { data: piece };
          offset += piece.byteLength;
          unflushed += 1;
          call.write(message, () => {
            unflushed -= 1;
            pump();
          });
        }
        if (offset >= end && unflushed === 0) call.end();
      };
      pump();
    });
  }

  async getBlob(id: string, bytes: number, deadlineUnixMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    const out = new Uint8Array(bytes);
    for (let offset = 0; offset < bytes; offset += BLOB_PART_BYTES) {
      await this.#getPart(id, out, offset, Math.min(BLOB_PART_BYTES, bytes - offset), deadlineUnixMs, signal);
    }
    return out;
  }

  /** Downloads `length` bytes of blob `id` from `offset` into `out` at the same offset. */
  async #getPart(id: string, out: Uint8Array, offset: number, length: number, deadlineUnixMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw new ChannelError("CANCELLED: aborted before sending", grpc.status.CANCELLED);
    const options = callOptions(deadlineUnixMs);
    const call: grpc.ClientReadableStream<Wire> = this.#client.GetBlob({ blob_id: id, offset, length }, options);
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    let filled = 0;
    try {
      for await (const chunk of call) {
        const piece: Uint8Array = chunk.data;
        if (filled + piece.byteLength > length) {
          call.cancel();
          throw new ChannelError(`DATA_LOSS: bytes ${offset}+${length} of blob ${id} were asked for, more arrived`, grpc.status.DATA_LOSS);
        }
        out.set(piece, offset + filled);
        filled += piece.byteLength;
      }
    } catch (error) {
      throw error instanceof ChannelError ? error : channelError(error as Error);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    if (filled !== length) {
      throw new ChannelError(`DATA_LOSS: bytes ${offset}+${length} of blob ${id} were asked for, ${filled} arrived`, grpc.status.DATA_LOSS);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.close();
  }

  #unary(method: string, message: object, timeoutMs: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      this.#client[method](message, { deadline: Date.now() + timeoutMs }, (error: grpc.ServiceError | null, reply: Wire) =>
        error ? reject(channelError(error)) : resolve(reply));
    });
  }
}
