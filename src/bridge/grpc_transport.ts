/**
 * The gRPC transport: a `@grpc/grpc-js` client over a unix socket (or TCP) to one worker.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { serviceClients } from "./_proto.ts";
import {
  ChannelError,
  type PingInfo,
  type WireOutcome,
  type WireRequest,
  type WireStreamEvent,
  type WorkerDescription,
  type WorkerTransport,
} from "./transport.ts";

/** Largest message either side accepts; bulk data belongs in shared memory. */
export const GRPC_MESSAGE_BYTES_MAX = 2 ** 31 - 1;

const CHANNEL_OPTIONS = {
  "grpc.max_receive_message_length": GRPC_MESSAGE_BYTES_MAX,
  "grpc.max_send_message_length": GRPC_MESSAGE_BYTES_MAX,
  // One worker, one connection: no reconnect storms, fail fast when the worker is gone.
  "grpc.initial_reconnect_backoff_ms": 50,
  "grpc.max_reconnect_backoff_ms": 1000,
  "grpc.enable_retries": 0,
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
  #closed = false;

  /**
   * @param address a gRPC target, e.g. `unix:/tmp/snakepit-x/w0.sock` or `127.0.0.1:50051`
   */
  constructor(readonly address: string) {
    const { Worker } = serviceClients();
    this.#client = new Worker(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  execute(request: WireRequest, signal?: AbortSignal): Promise<WireOutcome> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new ChannelError("CANCELLED: aborted before sending", grpc.status.CANCELLED));
      const options: grpc.CallOptions = request.deadlineUnixMs > 0 ? { deadline: request.deadlineUnixMs } : {};
      const call = this.#client.Execute(toWireMessage(request), options, (error: grpc.ServiceError | null, reply: Wire) => {
        signal?.removeEventListener("abort", onAbort);
        if (error) return reject(channelError(error));
        if (reply.outcome === "error") return resolve({ ok: false, error: reply.error });
        resolve({
          ok: true,
          data: reply.result.data,
          encoding: reply.result.encoding,
          timing: {
            decodeNs: reply.timing?.decode_ns ?? 0,
            executeNs: reply.timing?.execute_ns ?? 0,
            encodeNs: reply.timing?.encode_ns ?? 0,
          },
        });
      });
      const onAbort = () => call.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async *stream(request: WireRequest, signal?: AbortSignal): AsyncIterable<WireStreamEvent> {
    if (signal?.aborted) throw new ChannelError("CANCELLED: aborted before sending", grpc.status.CANCELLED);
    const options: grpc.CallOptions = request.deadlineUnixMs > 0 ? { deadline: request.deadlineUnixMs } : {};
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
