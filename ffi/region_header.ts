/**
 * The region header's layout, mirrored from `zig/header.zig`, and a reader that decodes a
 * header from raw bytes without the native library (for inspection tools, e.g. reading
 * `/dev/shm/snakepit-*` files). tests/native_layout.test.ts checks the mirror against the
 * library's `snakepit_header_layout`.
 *
 * @module
 */

/** Header fields in the order the library reports them: field -> [offset, bytes]. */
export const HEADER_FIELDS = {
  magic: [0, 8],
  layout_version: [8, 4],
  header_bytes: [12, 4],
  generation: [16, 8],
  total_bytes: [24, 8],
  payload_offset: [32, 8],
  payload_bytes: [40, 8],
  creator_pid: [48, 4],
  flags: [52, 4],
  creation_time_ns: [56, 8],
  lock_state: [128, 4],
  lock_drain_sequence: [132, 4],
  lock_owner_deaths: [136, 4],
  reference_count: [192, 4],
  holders: [256, 512],
  readers: [768, 512],
} as const satisfies Record<string, readonly [number, number]>;

/** "SNAKEPIT" as a little-endian u64. */
export const HEADER_MAGIC = 0x5449_5045_4b41_4e53n;
export const HEADER_LAYOUT_VERSION = 1;
export const HEADER_BYTES = 1280;
const SLOTS = 64;

/** A decoded header. Holder and reader entries list `[pid, count]` for slots in use. */
export interface RegionHeader {
  layoutVersion: number;
  generation: number;
  totalBytes: number;
  payloadOffset: number;
  payloadBytes: number;
  creatorPid: number;
  flags: number;
  creationTimeNs: bigint;
  lockState: number;
  lockOwnerDeaths: number;
  referenceCount: number;
  holders: Array<[pid: number, count: number]>;
  readers: Array<[pid: number, count: number]>;
}

/**
 * Decodes a region header from the first bytes of a region (a snapshot: the live words change).
 *
 * @throws {RangeError} Fewer than 1280 bytes, or a magic that is not Snakepit's.
 * @example
 * ```ts
 * import { readRegionHeader } from "./region_header.ts";
 * const bytes = new Uint8Array(1280);
 * try { readRegionHeader(bytes); } catch (error) { console.log((error as Error).name); } // RangeError
 * ```
 */
export function readRegionHeader(bytes: Uint8Array): RegionHeader {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength < HEADER_BYTES) {
    throw new RangeError(`Cannot read a region header: it needs ${HEADER_BYTES} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const offset = (field: keyof typeof HEADER_FIELDS) => HEADER_FIELDS[field][0];
  if (view.getBigUint64(offset("magic"), true) !== HEADER_MAGIC) {
    throw new RangeError("Cannot read a region header: the magic is not Snakepit's");
  }
  const u64 = (field: keyof typeof HEADER_FIELDS) => Number(view.getBigUint64(offset(field), true));
  const u32 = (field: keyof typeof HEADER_FIELDS) => view.getUint32(offset(field), true);
  const slots = (field: "holders" | "readers") => {
    const used: Array<[number, number]> = [];
    for (let slot = 0; slot < SLOTS; slot += 1) {
      const value = view.getBigUint64(offset(field) + slot * 8, true);
      if (value !== 0n) used.push([Number(value >> 32n), Number(value & 0xffff_ffffn)]);
    }
    return used;
  };
  return {
    layoutVersion: u32("layout_version"),
    generation: u64("generation"),
    totalBytes: u64("total_bytes"),
    payloadOffset: u64("payload_offset"),
    payloadBytes: u64("payload_bytes"),
    creatorPid: u32("creator_pid"),
    flags: u32("flags"),
    creationTimeNs: view.getBigUint64(offset("creation_time_ns"), true),
    lockState: u32("lock_state"),
    lockOwnerDeaths: u32("lock_owner_deaths"),
    referenceCount: u32("reference_count"),
    holders: slots("holders"),
    readers: slots("readers"),
  };
}
