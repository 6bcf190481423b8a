/**
 * The native library's limits and layout constants, as `snakepit_limits` reports them.
 *
 * @module
 */

/** The native library's limits and layout constants (`snakepit_limits`). */
export interface NativeLimits {
  /** The largest payload of one region (64 GiB). */
  regionPayloadBytesMax: number;
  /** The most bytes one process may map across its regions (256 GiB). */
  processMappedBytesMax: number;
  /** The most regions one process may have open (1024). */
  processRegionsMax: number;
  /** The most references one region counts. */
  referencesMax: number;
  /** Distinct processes that can hold references to one region (64). */
  holderSlotsMax: number;
  /** Distinct processes that can hold one region's shared lock at once (64). */
  readerSlotsMax: number;
  /** The most dimensions of a tensor descriptor (8). */
  ndimMax: number;
  /** Where the payload starts in a region (4096). */
  payloadOffset: number;
  /** The payload's alignment guarantee (256). */
  payloadAlignment: number;
  /** How often a lock waiter checks that the holders it waits for are alive (ns). */
  livenessCheckIntervalNs: number;
  /** The longest single sleep of a lock waiter (ns). */
  waitSliceNs: number;
  /** The longest instance name (20). */
  instanceBytesMax: number;
  /** The longest region name (63). */
  regionNameBytesMax: number;
  /** The size of an encoded descriptor (256). */
  descriptorBytes: number;
  /** The size of a region header (1280). */
  headerBytes: number;
}

/** The limits in the order `snakepit_limits` writes them. */
export const LIMIT_NAMES = [
  "regionPayloadBytesMax",
  "processMappedBytesMax",
  "processRegionsMax",
  "referencesMax",
  "holderSlotsMax",
  "readerSlotsMax",
  "ndimMax",
  "payloadOffset",
  "payloadAlignment",
  "livenessCheckIntervalNs",
  "waitSliceNs",
  "instanceBytesMax",
  "regionNameBytesMax",
  "descriptorBytes",
  "headerBytes",
] as const satisfies ReadonlyArray<keyof NativeLimits>;
