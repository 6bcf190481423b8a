/**
 * The chunked copy path's framing (`python/src/snakepit_bridge/blobs.py` is the worker's side).
 * A tensor or table that does not travel through shared memory and is at least the pool's
 * chunked-copy threshold goes beside its call as a blob, streamed in `BLOB_CHUNK_BYTES` pieces
 * over the worker's gRPC channel, so values of 2 GiB and more cross although no gRPC message may
 * reach 2 GiB. A payload names a blob with ext 0x14 `[id, bytes]`; a result or stream item that
 * names blobs is wrapped in ext 0x15 `[[[id, bytes], ...], payload]`, which says what to fetch
 * before decoding.
 *
 * @module
 */
import { Unpackr } from "msgpackr";
import { SerializationError } from "../errors/pool_errors.ts";

export const EXT_BLOB = 0x14;
export const EXT_BLOBBED_PAYLOAD = 0x15;
/** Bytes per streamed piece: just under gRPC's default 4 MiB message limit, so any peer reads them. */
export const BLOB_CHUNK_BYTES = 4 * 1024 * 1024 - 4096;
/**
 * Bytes per part: one PutBlob / GetBlob stream each. One stream per blob would be simpler, but
 * HTTP/2 flow control on a very long stream stalls in Bun (a first 1 GiB upload took 80–190 s
 * as one stream, 3 s as 64 MiB parts).
 */
export const BLOB_PART_BYTES = 16 * BLOB_CHUNK_BYTES;

const plain = new Unpackr({ useRecords: false, mapsAsObjects: true, moreTypes: false } as ConstructorParameters<typeof Unpackr>[0]);

/** A result's blobs and its inner payload, when `data` is wrapped in ext 0x15; else undefined. */
export function blobbedPayload(data: Uint8Array): { blobs: Array<{ id: string; bytes: number }>; payload: Uint8Array } | undefined {
  const format = data[0];
  let start: number;
  if (format === 0xc7) start = 3;
  else if (format === 0xc8) start = 4;
  else if (format === 0xc9) start = 6;
  else return undefined;
  if (data[start - 1] !== EXT_BLOBBED_PAYLOAD) return undefined;
  let body: unknown;
  try {
    body = plain.unpack(data.subarray(start));
  } catch (cause) {
    throw new SerializationError(`Cannot read a chunked result's list of blobs: ${(cause as Error).message}`, { cause });
  }
  const [refs, payload] = Array.isArray(body) ? body : [];
  const valid = Array.isArray(refs) && payload instanceof Uint8Array &&
    refs.every((ref) => Array.isArray(ref) && typeof ref[0] === "string" && Number.isSafeInteger(ref[1]) && ref[1] >= 0);
  if (!valid) throw new SerializationError("A chunked result's list of blobs is malformed (msgpack ext 0x15)");
  return { blobs: (refs as Array<[string, number]>).map(([id, bytes]) => ({ id, bytes })), payload: payload as Uint8Array };
}
