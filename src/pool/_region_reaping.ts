/**
 * The pool's share of shared-memory hygiene: unlink regions whose every holder is dead, at
 * start-up and every minute. A region that any live process holds is never touched.
 *
 * @module
 */
import process from "node:process";
import { type NativeLibrary, openNativeLibrary } from "../../ffi/native_library.ts";
import { reapRegions } from "../../ffi/reaper.ts";

/** How often a pool reaps shared-memory regions whose every holder is dead. */
export const REGION_REAP_INTERVAL_MS = 60_000;
let nativeWarningShown = false;

/** Owns the native library handle the reaper needs, and runs the reaper on schedule. */
export class RegionReaping {
  #lastReapAt = 0;

  private constructor(
    readonly library: NativeLibrary,
    readonly onReaped: (reaped: number, scanned: number) => void,
  ) {}

  /**
   * Opens the native library and reaps once. Without the library the pool still runs: this
   * resolves undefined and warns once per process.
   */
  static async start(path: string | undefined, onReaped: (reaped: number, scanned: number) => void): Promise<RegionReaping | undefined> {
    let library: NativeLibrary;
    try {
      library = await openNativeLibrary(path);
    } catch (error) {
      if (!nativeWarningShown) {
        nativeWarningShown = true;
        process.emitWarning(
          `Snakepit: the native library could not be loaded (${(error as Error).message}); ` +
            "shared-memory regions of dead processes will not be reaped. Run `make setup` or set SNAKEPIT_NATIVE_LIB.",
          { code: "SNAKEPIT_NATIVE_UNAVAILABLE" },
        );
      }
      return undefined;
    }
    const reaping = new RegionReaping(library, onReaped);
    reaping.#reap(Date.now());
    return reaping;
  }

  /** Reaps now (a worker died: the regions only it held go at once, not a minute later). */
  reapNow(): void {
    this.#reap(Date.now());
  }

  /** Reaps when the interval has passed since the last run. */
  tick(now: number): void {
    if (now - this.#lastReapAt >= REGION_REAP_INTERVAL_MS) this.#reap(now);
  }

  close(): void {
    this.library.close();
  }

  #reap(now: number): void {
    this.#lastReapAt = now;
    try {
      const report = reapRegions(this.library);
      if (report.reaped > 0) this.onReaped(report.reaped, report.scanned);
    } catch {
      // A reaper that cannot read /dev/shm must not take the pool down; it tries again later.
    }
  }
}
