/**
 * Removing a region's name from /dev/shm: mappings stay valid, later opens fail with not_found,
 * and the memory goes back once the last mapping is gone.
 *
 * @module
 */
import { nativeAccess } from "./_native_access.ts";
import { REGION_NAME_PATTERN } from "./_region_native.ts";
import { errorFromStatus } from "./shared_memory_error.ts";
import { NATIVE_ERROR_RECORD_WORDS, NativeStatus } from "./symbols.ts";

const encoder = new TextEncoder();

/**
 * Unlinks the region `name` (`snakepit_region_unlink`), for names handed over by another
 * process whose owner will not unlink them itself (a spilled frame, say). It ignores reference
 * counts: use it only on a region whose every user is done with its name.
 *
 * @param library A NativeLibrary from `openNativeLibrary()`.
 * @param name A region name, `/snakepit-<instance>-<32 hex digits>`.
 * @returns True when this call removed the name; false when no region had it.
 * @throws {TypeError} library is not an opened NativeLibrary, or name is not a string.
 * @throws {RangeError} name does not match {@link REGION_NAME_PATTERN}.
 * @throws {SharedMemoryError} os_error (with errno) when the system refuses.
 * @example
 * ```ts
 * import { openNativeLibrary, Region, unlinkRegion } from "./mod.ts";
 * const library = await openNativeLibrary();
 * const region = Region.create(library, { payloadBytes: 16, instance: "docs" });
 * console.log(unlinkRegion(library, region.name)); // true
 * console.log(unlinkRegion(library, region.name)); // false
 * region.close();
 * library.close();
 * ```
 */
export function unlinkRegion(library: unknown, name: string): boolean {
  const access = nativeAccess(library, "unlink a shared-memory region");
  if (typeof name !== "string") {
    throw new TypeError(
      `Cannot unlink a shared-memory region: name must be a string, received ${typeof name}`,
    );
  }
  if (!REGION_NAME_PATTERN.test(name)) {
    throw new RangeError(
      `Cannot unlink a shared-memory region: name must match ${REGION_NAME_PATTERN}, ` +
        `received ${JSON.stringify(name)}`,
    );
  }
  const nameBytes = encoder.encode(name);
  const record = new Uint32Array(NATIVE_ERROR_RECORD_WORDS);
  const status = access.bindings("unlinkRegion").functions.snakepit_region_unlink(
    nameBytes,
    nameBytes.byteLength,
    record,
  );
  if (status === NativeStatus.ok) return true;
  if (status === NativeStatus.not_found) return false;
  throw errorFromStatus({
    op: "unlink",
    status,
    record,
    path: access.path,
    regionName: name,
    what: `Cannot unlink shared-memory region ${name}`,
  });
}
