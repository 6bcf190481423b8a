/**
 * The reaper: removes shared-memory regions whose every holder is dead.
 *
 * @module
 */
import { nativeAccess } from "./_native_access.ts";
import { REGION_INSTANCE_PATTERN } from "./region.ts";
import { errorFromStatus } from "./shared_memory_error.ts";
import { NATIVE_ERROR_RECORD_WORDS, NativeStatus } from "./symbols.ts";

/** Options of {@link reapRegions}. */
export interface RegionReapOptions {
  /**
   * Only examine this instance's regions, and also drop the references of its dead holders
   * from regions that live processes still hold. Default: every instance (regions with a live
   * holder are never touched).
   */
  instance?: string;
  /** Leave objects still being created alone for this long (ms). Default 10 000. */
  graceMs?: number;
}

/** What one run of the reaper did. */
export interface RegionReapReport {
  /** `snakepit-*` objects looked at. */
  scanned: number;
  /** Regions unlinked: every holder dead (or none left), or an abandoned creation. */
  reaped: number;
  /** Regions with a live holder, left alone. */
  sparedLive: number;
  /** Objects still within the grace period of their creation. */
  skippedYoung: number;
  /** Objects that are not regions of this layout, never touched. */
  skippedForeign: number;
  /** True when the run stopped at its entry limit; run it again. */
  truncated: boolean;
}

/**
 * Scans `/dev/shm` once and unlinks the regions whose every holder is dead. Run it at start-up
 * and periodically; it never touches a region that a live process holds.
 *
 * @throws {RangeError} options.instance or options.graceMs out of range.
 * @throws {SharedMemoryError} os_error when /dev/shm cannot be read.
 * @example
 * ```ts
 * import { openNativeLibrary, reapRegions } from "./mod.ts";
 * const library = await openNativeLibrary();
 * console.log(reapRegions(library, { instance: "docs" }).reaped); // 0
 * library.close();
 * ```
 */
export function reapRegions(library: unknown, options: RegionReapOptions = {}): RegionReapReport {
  const access = nativeAccess(library, "reap shared-memory regions");
  const { instance = "", graceMs = 10_000 } = options;
  if (
    typeof instance !== "string" || (instance !== "" && !REGION_INSTANCE_PATTERN.test(instance))
  ) {
    throw new RangeError(
      `Cannot reap shared-memory regions: options.instance must match ${REGION_INSTANCE_PATTERN}, ` +
        `received ${JSON.stringify(instance)}`,
    );
  }
  if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > 0xffff_ffff) {
    throw new RangeError(
      `Cannot reap shared-memory regions: options.graceMs must be an integer from 0 to ` +
        `${0xffff_ffff}, received ${graceMs}`,
    );
  }
  const instanceBytes = new TextEncoder().encode(instance);
  const report = new Uint32Array(6);
  const record = new Uint32Array(NATIVE_ERROR_RECORD_WORDS);
  const status = access.bindings("reapRegions").functions.snakepit_reap(
    instanceBytes.byteLength === 0 ? null : instanceBytes,
    instanceBytes.byteLength,
    graceMs,
    report,
    record,
  );
  if (status !== NativeStatus.ok) {
    throw errorFromStatus({
      op: "reap",
      status,
      record,
      path: access.path,
      what: "Cannot reap shared-memory regions",
    });
  }
  const [scanned, reaped, sparedLive, skippedYoung, skippedForeign, truncated] = report;
  return { scanned, reaped, sparedLive, skippedYoung, skippedForeign, truncated: truncated === 1 };
}
