/**
 * Internal: the argument checks and native calls behind `Region.create`, `Region.open` and
 * `Region.info`, and the types they take and return (re-exported by region.ts).
 *
 * @module
 */
import type { NativeAccess } from "./_native_access.ts";
import { errorFromStatus } from "./shared_memory_error.ts";
import { NATIVE_ERROR_RECORD_WORDS, type NativeBindings, NativeStatus } from "./symbols.ts";

/** Instance names: 1 to 20 of `[A-Za-z0-9_]`. */
export const REGION_INSTANCE_PATTERN: RegExp = /^[A-Za-z0-9_]{1,20}$/;
/** Region names: `/snakepit-<instance>-<32 lowercase hex digits>`. */
export const REGION_NAME_PATTERN: RegExp = /^\/snakepit-[A-Za-z0-9_]{1,20}-[0-9a-f]{32}$/;
/** The largest payload of one region: 64 GiB. */
export const REGION_PAYLOAD_BYTES_MAX = 64 * 2 ** 30;
/** The words `snakepit_region_info` reports. */
export const INFO_WORDS = 14;

/** Options of `Region.create`. */
export interface RegionCreateOptions {
  /** Payload size in bytes, 1 to {@link REGION_PAYLOAD_BYTES_MAX}. Required. */
  payloadBytes: number;
  /** Whose region it is, `[A-Za-z0-9_]{1,20}` (part of the name). Default `"default"`. */
  instance?: string;
  /**
   * Allocate every page now, so a full /dev/shm fails here with `shm_full` instead of killing a
   * writer with SIGBUS later. Costs a zero-fill of the payload. Default `false`.
   */
  reserve?: boolean;
}

/** Options of `Region.open`. */
export interface RegionOpenOptions {
  /** Refuse the region unless it is at this generation (a descriptor's). Default: any. */
  generation?: number;
  /** Hold a reference while open (given back by `close`). Default `true`. */
  retain?: boolean;
}

/** A region's state, from its header, and what this Region holds. */
export interface RegionInfo {
  generation: number;
  totalBytes: number;
  payloadOffset: number;
  payloadBytes: number;
  creatorPid: number;
  /** Sticky: some lock holder died holding the lock. */
  ownerDied: boolean;
  createdAt: Date;
  /** References counted across all processes. */
  referenceCount: number;
  /** Processes recorded as holding references. */
  holders: number;
  /** References this Region holds. */
  referencesHeld: number;
  lockOwnerDeaths: number;
  sharedLocksHeld: number;
  exclusiveLockHeld: boolean;
}

const CREATE_RESERVE = 1;
const OPEN_RETAIN = 1;
const NAME_BYTES_MAX = 64;
const encoder = new TextEncoder();

/** Checks `Region.create`'s options, creates the region, and returns its handle and name. */
export function createRegionHandle(
  access: NativeAccess,
  options: RegionCreateOptions,
): { handle: number; name: string; payloadBytes: number } {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Cannot create a shared-memory region: options must be an object`);
  }
  const { payloadBytes, instance = "default", reserve = false } = options;
  if (!Number.isSafeInteger(payloadBytes) || payloadBytes < 1) {
    throw new RangeError(
      "Cannot create a shared-memory region: options.payloadBytes must be a positive " +
        `integer, received ${payloadBytes}`,
    );
  }
  if (typeof instance !== "string" || !REGION_INSTANCE_PATTERN.test(instance)) {
    throw new RangeError(
      "Cannot create a shared-memory region: options.instance must match " +
        `${REGION_INSTANCE_PATTERN}, received ${JSON.stringify(instance)}`,
    );
  }
  const bindings = access.bindings("Region.create");
  const instanceBytes = encoder.encode(instance);
  const handle = new Uint32Array(1);
  const record = new Uint32Array(NATIVE_ERROR_RECORD_WORDS);
  const status = bindings.functions.snakepit_region_create(
    instanceBytes,
    instanceBytes.byteLength,
    BigInt(payloadBytes),
    reserve ? CREATE_RESERVE : 0,
    handle,
    record,
  );
  if (status !== NativeStatus.ok) {
    const detail = status === NativeStatus.shm_full
      ? `${payloadBytes + 4096} bytes needed, ${freeShmBytes(bindings)} free`
      : undefined;
    throw errorFromStatus({
      op: "create",
      status,
      record,
      path: access.path,
      what: `Cannot create a shared-memory region of ${payloadBytes} bytes`,
      detail,
    });
  }
  return { handle: handle[0], name: regionNameOf(bindings, handle[0]), payloadBytes };
}

/** Checks `Region.open`'s arguments, opens the region, and returns its handle and size. */
export function openRegionHandle(
  access: NativeAccess,
  name: string,
  options: RegionOpenOptions,
): { handle: number; payloadBytes: number } {
  if (typeof name !== "string") {
    throw new TypeError(`Cannot open a shared-memory region: name must be a string`);
  }
  if (!REGION_NAME_PATTERN.test(name)) {
    throw new RangeError(
      `Cannot open a shared-memory region: name must match ${REGION_NAME_PATTERN}, ` +
        `received ${JSON.stringify(name)}`,
    );
  }
  const { generation = 0, retain = true } = options;
  if (!Number.isSafeInteger(generation) || generation < 0) {
    throw new RangeError(
      "Cannot open a shared-memory region: options.generation must be a positive integer, " +
        `received ${generation}`,
    );
  }
  const bindings = access.bindings("Region.open");
  const nameBytes = encoder.encode(name);
  const handle = new Uint32Array(1);
  const record = new Uint32Array(NATIVE_ERROR_RECORD_WORDS);
  const status = bindings.functions.snakepit_region_open(
    nameBytes,
    nameBytes.byteLength,
    BigInt(generation),
    retain ? OPEN_RETAIN : 0,
    handle,
    record,
  );
  if (status !== NativeStatus.ok) {
    throw errorFromStatus({
      op: "open",
      status,
      record,
      path: access.path,
      regionName: name,
      what: `Cannot open shared-memory region ${name}`,
    });
  }
  const payload = new BigUint64Array(2);
  bindings.functions.snakepit_region_payload(
    handle[0],
    payload.subarray(0, 1),
    payload.subarray(1),
  );
  return { handle: handle[0], payloadBytes: Number(payload[1]) };
}

/** The {@link RegionInfo} of `snakepit_region_info`'s words. */
export function decodeRegionInfo(words: BigUint64Array): RegionInfo {
  const value = (field: number) => Number(words[field]);
  return {
    generation: value(0),
    totalBytes: value(1),
    payloadOffset: value(2),
    payloadBytes: value(3),
    creatorPid: value(4),
    ownerDied: (value(5) & 1) !== 0,
    createdAt: new Date(Number(words[6] / 1_000_000n)),
    referenceCount: value(7),
    holders: value(8),
    referencesHeld: value(9),
    lockOwnerDeaths: value(11),
    sharedLocksHeld: value(12),
    exclusiveLockHeld: value(13) === 1,
  };
}

function regionNameOf(bindings: NativeBindings, handle: number): string {
  const buffer = new Uint8Array(NAME_BYTES_MAX);
  const length = new Uint32Array(1);
  const status = bindings.functions.snakepit_region_name(handle, buffer, NAME_BYTES_MAX, length);
  if (status !== NativeStatus.ok) throw new Error(`snakepit_region_name failed: ${status}`);
  return new TextDecoder().decode(buffer.subarray(0, length[0]));
}

function freeShmBytes(bindings: NativeBindings): number | string {
  const bytes = new BigUint64Array(1);
  const status = bindings.functions.snakepit_shm_available(bytes, null);
  return status === NativeStatus.ok ? Number(bytes[0]) : "unknown";
}
