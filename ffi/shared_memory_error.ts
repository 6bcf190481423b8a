/**
 * The error shared-memory operations throw: a NativeLibraryError that also names the system
 * call and region involved, with a message saying what to do.
 *
 * @module
 */
import { NativeLibraryError, type NativeLibraryErrorOptions } from "./native_library_error.ts";
import { NativeOp, NativeStatus } from "./symbols.ts";

/** The fields of a {@link SharedMemoryError}. */
export interface SharedMemoryErrorOptions extends NativeLibraryErrorOptions {
  /** errno of the failed system call, when one failed. */
  errno?: number;
  /** The failed system call (`"shm_open"`, `"statvfs"`, ...), when one failed. */
  syscall?: string;
  /** The region concerned, when there is one. */
  regionName?: string;
  /** What the caller can do about it. */
  suggestion?: string;
}

/**
 * A shared-memory operation failed: a region could not be created, opened, locked or released,
 * or a descriptor is invalid. Decide on `statusName` (stable), never on the message.
 *
 * @example
 * ```ts
 * import { openNativeLibrary, Region, SharedMemoryError } from "./mod.ts";
 * const library = await openNativeLibrary();
 * try {
 *   Region.open(library, "/snakepit-docs-00000000000000000000000000000000");
 * } catch (error) {
 *   if (error instanceof SharedMemoryError) console.log(error.statusName); // "not_found"
 * }
 * library.close();
 * ```
 */
export class SharedMemoryError extends NativeLibraryError {
  /** The failed system call, when one failed. */
  readonly syscall: string | undefined;
  /** The region concerned, when there is one. */
  readonly regionName: string | undefined;

  /**
   * @param message What failed and what to do about it.
   * @param options The error's fields and cause.
   */
  constructor(message: string, options: SharedMemoryErrorOptions) {
    super(message, options);
    this.syscall = options.syscall;
    this.regionName = options.regionName;
  }

  protected override details(): Record<string, unknown> {
    return { ...super.details(), syscall: this.syscall, regionName: this.regionName };
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  9: "EBADF",
  12: "ENOMEM",
  13: "EACCES",
  17: "EEXIST",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  27: "EFBIG",
  28: "ENOSPC",
  36: "ENAMETOOLONG",
};

/** A readable errno: `"24 (EMFILE)"`. */
export function describeErrno(errno: number): string {
  const name = ERRNO_NAMES[errno];
  return name === undefined ? String(errno) : `${errno} (${name})`;
}

const ENLARGE_SHM = "Enlarge /dev/shm: in Docker run the container with --shm-size=2g (Compose: " +
  "shm_size: 2gb; Kubernetes: mount an emptyDir with medium: Memory at /dev/shm); on a host, " +
  "sudo mount -o remount,size=8G /dev/shm. Or free space: close regions you no longer need and " +
  "run reapRegions() to remove those of dead processes.";

/** What each status means, in words. */
const EXPLANATIONS: Partial<Record<string, string>> = {
  os_error: "a system call failed",
  not_found: "no region has this name (never created, or already unlinked)",
  already_exists: "every random name tried was taken",
  not_snakepit_region: "the object is not a complete Snakepit region",
  layout_mismatch: "the region was written by another layout version",
  generation_mismatch: "the region's generation differs from the expected one",
  corrupt_header: "the region's header contradicts itself",
  region_too_large: "the payload exceeds the per-region limit of 64 GiB",
  process_bytes_exhausted: "this process would map more than its limit of 256 GiB",
  process_regions_exhausted: "this process already has its limit of 1024 regions open",
  shm_full: "/dev/shm has too little free space",
  over_release: "released more often than retained",
  holder_table_full: "the region's table of 64 holder processes is full",
  region_released: "the region's reference count already reached zero",
  reference_overflow: "the reference count is at its limit",
  timed_out: "the lock was not free before the deadline",
  not_locked: "this Region does not hold the lock in that mode",
  reader_table_full: "64 processes hold the shared lock already",
  descriptor_malformed: "the descriptor's bytes are malformed",
  unsupported_dtype: "the dtype is not supported",
  unsupported_device: "the device is not the CPU",
  descriptor_out_of_bounds: "some element lies outside the region's payload",
  descriptor_misaligned: "the byte offset is not aligned for the dtype",
  descriptor_overflow: "the shape, strides or offset overflow 64-bit arithmetic",
  descriptor_region_mismatch: "the descriptor names another region",
  invalid_name: "the name is not /snakepit-<instance>-<32 hex digits>",
  invalid_handle: "the region handle is not open in this process",
  handle_closed: "the region is closing",
};

/** What to do about each status, where something can be said. */
const SUGGESTIONS: Partial<Record<string, string>> = {
  shm_full: ENLARGE_SHM,
  not_found: "Check the name, and that the producer keeps its reference until the consumer " +
    "has opened the region.",
  region_too_large: "Split the data over several regions.",
  process_regions_exhausted: "Close regions this process no longer needs.",
  process_bytes_exhausted: "Close regions this process no longer needs, or split the work " +
    "over more processes.",
  over_release: "Release a region only as often as you retained it (create and open count as " +
    "one retain each).",
  region_released: "The region is being removed; create a new one.",
  holder_table_full: "At most 64 processes can hold one region; release it in processes that " +
    "are done with it.",
  reader_table_full: "At most 64 processes can hold one region's shared lock at once.",
  generation_mismatch: "The descriptor is stale: the region was reused since it was made. Ask " +
    "the producer for a fresh descriptor.",
  layout_mismatch: "Both sides must use the same Snakepit version; rebuild the native " +
    "library with `make setup`.",
  not_snakepit_region: "The name does not belong to a Snakepit region (or it is still being " +
    "created).",
  corrupt_header: "The region's header is damaged; unlink it and create a new one.",
  timed_out: "Raise timeoutMs, or find the holder that keeps the lock.",
  not_locked: "Release only locks this Region holds.",
};

/** Builds the {@link SharedMemoryError} for a failed native call. */
export function errorFromStatus(failure: {
  op: string;
  status: number;
  path: string;
  record?: Uint32Array;
  regionName?: string;
  /** The failed action, e.g. "Cannot open shared-memory region X" (default: the op). */
  what?: string;
  /** A fact to add after the explanation, e.g. the free space. */
  detail?: string;
}): SharedMemoryError {
  const entry = Object.entries(NativeStatus).find(([, code]) => code === failure.status);
  const statusName = entry === undefined ? `unknown(${failure.status})` : entry[0];
  const errno = failure.record?.[0] ?? 0;
  const opCode = failure.record?.[1] ?? 0;
  const syscall = opCode === 0
    ? undefined
    : Object.entries(NativeOp).find(([, code]) => code === opCode)?.[0] ?? `op(${opCode})`;
  const what = failure.what ?? `Native call ${failure.op} failed`;
  const explanation = EXPLANATIONS[statusName] ?? "the native library reported an error";
  const system = syscall === undefined || errno === 0
    ? ""
    : `; ${syscall} failed with errno ${describeErrno(errno)}`;
  const detail = failure.detail === undefined ? "" : ` (${failure.detail})`;
  const suggestion = SUGGESTIONS[statusName];
  const message = `${what}: ${explanation}${detail} [${statusName}]${system}.` +
    (suggestion === undefined ? "" : ` ${suggestion}`);
  return new SharedMemoryError(message, {
    op: failure.op,
    status: failure.status,
    statusName,
    path: failure.path,
    errno: errno === 0 ? undefined : errno,
    syscall,
    regionName: failure.regionName,
    suggestion,
  });
}
