/**
 * The gRPC service definitions, built once from the generated descriptor.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PROTO_DESCRIPTOR } from "../generated/proto_descriptor.ts";
import { Buffer } from "node:buffer";

/** Options for proto-loader; field names stay snake_case as in the .proto files. */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: Number,
  defaults: true,
  arrays: true,
  oneofs: true,
};

// deno-lint-ignore no-explicit-any
type ServiceClientConstructor = new (address: string, credentials: grpc.ChannelCredentials, options?: object) => any;

let cached: { Worker: ServiceClientConstructor; Health: ServiceClientConstructor } | undefined;

/** Client constructors for `snakepit.v1.Worker` and `grpc.health.v1.Health`. */
export function serviceClients(): { Worker: ServiceClientConstructor; Health: ServiceClientConstructor } {
  if (cached) return cached;
  // deno-lint-ignore no-explicit-any
  const definition = protoLoader.fromJSON(PROTO_DESCRIPTOR as any, LOADER_OPTIONS);
  // deno-lint-ignore no-explicit-any
  const loaded = grpc.loadPackageDefinition(definition) as any;
  cached = { Worker: loaded.snakepit.v1.Worker, Health: loaded.grpc.health.v1.Health };
  return cached;
}

/** Decoders of the Worker service's reply messages, as grpc-js would decode them. */
export function replyDecoders(): {
  executeResponse: (bytes: Uint8Array) => Record<string, unknown>;
  streamChunk: (bytes: Uint8Array) => Record<string, unknown>;
} {
  // deno-lint-ignore no-explicit-any
  const service = (serviceClients().Worker as any).service;
  const buffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    executeResponse: (bytes) => service.Execute.responseDeserialize(buffer(bytes)),
    streamChunk: (bytes) => service.ExecuteStream.responseDeserialize(buffer(bytes)),
  };
}
