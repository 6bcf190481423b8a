/**
 * The pool's side of the chunked copy path (`../bridge/_blobs.ts`): a call's big argument blobs
 * go to the worker before the call, and the blobs a result names come back before it is decoded.
 *
 * @module
 */
import { blobbedPayload } from "../bridge/_blobs.ts";
import type { WireRequest, WorkerTransport } from "../bridge/transport.ts";
import type { CallContext } from "./_call_runner.ts";

/** Uploads `request`'s blobs to the worker behind `transport`. */
export async function uploadBlobs(transport: WorkerTransport, request: WireRequest, signal: AbortSignal | undefined): Promise<void> {
  for (const blob of request.blobs ?? []) await transport.putBlob(blob, request.deadlineUnixMs, signal);
}

/**
 * The payload to decode from a result or stream item's `data`: `data` itself, or, when it names
 * blobs (ext 0x15), its inner payload once the blobs are fetched into the call's transfer.
 */
export function withBlobs(
  transport: WorkerTransport,
  data: Uint8Array,
  request: WireRequest,
  context: CallContext,
): Uint8Array | Promise<Uint8Array> {
  const blobbed = blobbedPayload(data);
  if (blobbed === undefined) return data;
  return (async () => {
    const fetched = new Map<string, Uint8Array>();
    for (const { id, bytes } of blobbed.blobs) {
      fetched.set(id, await transport.getBlob(id, bytes, request.deadlineUnixMs, context.signal));
    }
    if (context.transfer) context.transfer.inboundBlobs = fetched;
    return blobbed.payload;
  })();
}
