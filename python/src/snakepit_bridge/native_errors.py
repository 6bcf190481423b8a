"""The error shared-memory operations raise, with messages that say what to do.

Mirrors ``ffi/shared_memory_error.ts``: the same explanations and suggestions per status, so a
failure reads the same from TypeScript and from Python.
"""

from __future__ import annotations

import ctypes
from typing import Final

from .native import OPS, STATUS_CODES, NativeLibrary, NativeLibraryError

_STATUS_NAMES: Final[dict[int, str]] = {code: name for name, code in STATUS_CODES.items()}
_OP_NAMES: Final[dict[int, str]] = {code: name for name, code in OPS.items()}
_ERRNO_NAMES: Final[dict[int, str]] = {
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
}

ENLARGE_SHM: Final[str] = (
    "Enlarge /dev/shm: in Docker run the container with --shm-size=2g (Compose: shm_size: 2gb; "
    "Kubernetes: mount an emptyDir with medium: Memory at /dev/shm); on a host, sudo mount -o "
    "remount,size=8G /dev/shm. Or free space: close regions you no longer need and run "
    "reapRegions() to remove those of dead processes."
)

EXPLANATIONS: Final[dict[str, str]] = {
    "os_error": "a system call failed",
    "not_found": "no region has this name (never created, or already unlinked)",
    "already_exists": "every random name tried was taken",
    "not_snakepit_region": "the object is not a complete Snakepit region",
    "layout_mismatch": "the region was written by another layout version",
    "generation_mismatch": "the region's generation differs from the expected one",
    "corrupt_header": "the region's header contradicts itself",
    "region_too_large": "the payload exceeds the per-region limit of 64 GiB",
    "process_bytes_exhausted": "this process would map more than its limit of 256 GiB",
    "process_regions_exhausted": "this process already has its limit of 1024 regions open",
    "shm_full": "/dev/shm has too little free space",
    "over_release": "released more often than retained",
    "holder_table_full": "the region's table of 64 holder processes is full",
    "region_released": "the region's reference count already reached zero",
    "reference_overflow": "the reference count is at its limit",
    "timed_out": "the lock was not free before the deadline",
    "not_locked": "this Region does not hold the lock in that mode",
    "reader_table_full": "64 processes hold the shared lock already",
    "descriptor_malformed": "the descriptor's bytes are malformed",
    "unsupported_dtype": "the dtype is not supported",
    "unsupported_device": "the device is not the CPU",
    "descriptor_out_of_bounds": "some element lies outside the region's payload",
    "descriptor_misaligned": "the byte offset is not aligned for the dtype",
    "descriptor_overflow": "the shape, strides or offset overflow 64-bit arithmetic",
    "descriptor_region_mismatch": "the descriptor names another region",
    "invalid_name": "the name is not /snakepit-<instance>-<32 hex digits>",
    "invalid_handle": "the region handle is not open in this process",
    "handle_closed": "the region is closing",
}

SUGGESTIONS: Final[dict[str, str]] = {
    "shm_full": ENLARGE_SHM,
    "not_found": "Check the name, and that the producer keeps its reference until the consumer "
    "has opened the region.",
    "region_too_large": "Split the data over several regions.",
    "process_regions_exhausted": "Close regions this process no longer needs.",
    "process_bytes_exhausted": "Close regions this process no longer needs, or split the work "
    "over more processes.",
    "over_release": "Release a region only as often as you retained it (create and open count "
    "as one retain each).",
    "region_released": "The region is being removed; create a new one.",
    "holder_table_full": "At most 64 processes can hold one region; release it in processes "
    "that are done with it.",
    "reader_table_full": "At most 64 processes can hold one region's shared lock at once.",
    "generation_mismatch": "The descriptor is stale: the region was reused since it was made. "
    "Ask the producer for a fresh descriptor.",
    "layout_mismatch": "Both sides must use the same Snakepit version; rebuild the native "
    "library with `make setup`.",
    "not_snakepit_region": "The name does not belong to a Snakepit region (or it is still "
    "being created).",
    "corrupt_header": "The region's header is damaged; unlink it and create a new one.",
    "timed_out": "Raise the timeout, or find the holder that keeps the lock.",
    "not_locked": "Release only locks this Region holds.",
}


class SharedMemoryError(NativeLibraryError):
    """A shared-memory operation failed. Decide on ``status_name``, never on the message.

    ``syscall`` names the failed system call (with ``errno``) when one failed; ``region_name``
    the region concerned; ``suggestion`` what to do.
    """

    def __init__(
        self,
        message: str,
        *,
        op: str,
        status: int,
        status_name: str,
        path: str,
        errno: int | None = None,
        syscall: str | None = None,
        region_name: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        super().__init__(
            message, op=op, status=status, status_name=status_name, path=path, errno=errno
        )
        self.syscall = syscall
        self.region_name = region_name
        self.suggestion = suggestion


def describe_errno(errno: int) -> str:
    """A readable errno: ``"24 (EMFILE)"``."""
    name = _ERRNO_NAMES.get(errno)
    return str(errno) if name is None else f"{errno} ({name})"


def error_from_status(
    library: NativeLibrary,
    op: str,
    status: int,
    *,
    record: ctypes.Array[ctypes.c_uint32] | None = None,
    region_name: str | None = None,
    what: str | None = None,
    detail: str | None = None,
) -> SharedMemoryError:
    """The :class:`SharedMemoryError` for a failed native call (same text as TypeScript's)."""
    status_name = _STATUS_NAMES.get(status, f"unknown({status})")
    errno = record[0] if record is not None else 0
    op_code = record[1] if record is not None else 0
    syscall = None if op_code == 0 else _OP_NAMES.get(op_code, f"op({op_code})")
    explanation = EXPLANATIONS.get(status_name, "the native library reported an error")
    system = (
        ""
        if syscall is None or errno == 0
        else f"; {syscall} failed with errno {describe_errno(errno)}"
    )
    detail_text = "" if detail is None else f" ({detail})"
    suggestion = SUGGESTIONS.get(status_name)
    message = (
        f"{what or f'Native call {op} failed'}: {explanation}{detail_text} [{status_name}]{system}."
    )
    if suggestion is not None:
        message += f" {suggestion}"
    return SharedMemoryError(
        message,
        op=op,
        status=status,
        status_name=status_name,
        path=library.path,
        errno=errno or None,
        syscall=syscall,
        region_name=region_name,
        suggestion=suggestion,
    )


def closed_error(library: NativeLibrary, op: str, region_name: str) -> SharedMemoryError:
    """The error every method of a closed Region raises, without reaching native code."""
    return SharedMemoryError(
        f"Cannot call {op} on region {region_name}: this Region is closed. Open the region again "
        "with Region.open() if it still exists.",
        op=op,
        status=0,
        status_name="closed",
        path=library.path,
        region_name=region_name,
    )
