"""The native library's symbol table and constants, as Python sees them.

One of the three mirrors of ``zig/c_api.zig`` (with ``ffi/symbols.ts``);
``tests/native_symbols.test.ts`` checks that they agree. ``native`` re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

NativeType = Literal["u32", "i32", "u64", "buffer"]
"""Neutral type names: fixed-width integers, and ``buffer`` for a pointer to caller memory."""


@dataclass(frozen=True)
class NativeSymbol:
    """One exported function: parameter types in order and the result type."""

    parameters: tuple[NativeType, ...]
    result: NativeType


SYMBOLS: Final[dict[str, NativeSymbol]] = {
    # (out_version) -> status
    "snakepit_abi_version": NativeSymbol(("buffer",), "i32"),
    # (out_major, out_minor, out_patch) -> status
    "snakepit_library_version": NativeSymbol(("buffer", "buffer", "buffer"), "i32"),
    # (data, data_bytes, out_crc) -> status
    "snakepit_crc32c": NativeSymbol(("buffer", "u32", "buffer"), "i32"),
    # (status, out_name, name_capacity_bytes, out_name_bytes) -> status
    "snakepit_status_name": NativeSymbol(("i32", "buffer", "u32", "buffer"), "i32"),
    # (out_words, capacity_words, out_count) -> status
    "snakepit_limits": NativeSymbol(("buffer", "u32", "buffer"), "i32"),
    "snakepit_header_layout": NativeSymbol(("buffer", "u32", "buffer"), "i32"),
    "snakepit_descriptor_layout": NativeSymbol(("buffer", "u32", "buffer"), "i32"),
    # (out_bytes, out_error) -> status
    "snakepit_shm_available": NativeSymbol(("buffer", "buffer"), "i32"),
    # (out_regions, out_mapped_bytes) -> status
    "snakepit_process_usage": NativeSymbol(("buffer", "buffer"), "i32"),
    # (instance, instance_bytes, payload_bytes, flags, out_handle, out_error) -> status
    "snakepit_region_create": NativeSymbol(
        ("buffer", "u32", "u64", "u32", "buffer", "buffer"), "i32"
    ),
    # (name, name_bytes, expected_generation, flags, out_handle, out_error) -> status
    "snakepit_region_open": NativeSymbol(
        ("buffer", "u32", "u64", "u32", "buffer", "buffer"), "i32"
    ),
    # (handle, out_unlinked) -> status
    "snakepit_region_close": NativeSymbol(("u32", "buffer"), "i32"),
    # (name, name_bytes, out_error) -> status
    "snakepit_region_unlink": NativeSymbol(("buffer", "u32", "buffer"), "i32"),
    # (handle, out_address, out_bytes) -> status
    "snakepit_region_payload": NativeSymbol(("u32", "buffer", "buffer"), "i32"),
    # (handle, out_words, capacity_words, out_count) -> status
    "snakepit_region_info": NativeSymbol(("u32", "buffer", "u32", "buffer"), "i32"),
    # (handle, out_name, name_capacity_bytes, out_name_bytes) -> status
    "snakepit_region_name": NativeSymbol(("u32", "buffer", "u32", "buffer"), "i32"),
    # (handle, out_fd, out_error) -> status
    "snakepit_region_duplicate_fd": NativeSymbol(("u32", "buffer", "buffer"), "i32"),
    # (handle) -> status
    "snakepit_region_retain": NativeSymbol(("u32",), "i32"),
    # (handle, out_unlinked, out_error) -> status
    "snakepit_region_release": NativeSymbol(("u32", "buffer", "buffer"), "i32"),
    # (handle, out_generation) -> status
    "snakepit_region_bump_generation": NativeSymbol(("u32", "buffer"), "i32"),
    # (handle, word_offset, expected, parked_offset, spin_ns, timeout_ns, out_value) -> status;
    # blocks (ctypes releases the GIL meanwhile)
    "snakepit_region_wait_word": NativeSymbol(
        ("u32", "u64", "u32", "u64", "u64", "u64", "buffer"), "i32"
    ),
    # (handle, word_offset, value, parked_offset, out_was_parked) -> status
    "snakepit_region_publish_word": NativeSymbol(("u32", "u64", "u32", "u64", "buffer"), "i32"),
    # (handle, word_offset) -> status
    "snakepit_region_wake_word": NativeSymbol(("u32", "u64"), "i32"),
    # (handle, mode, timeout_ns, flags) -> status; blocks (ctypes releases the GIL meanwhile)
    "snakepit_lock_acquire": NativeSymbol(("u32", "u32", "u64", "u32"), "i32"),
    # (handle, mode) -> status
    "snakepit_lock_release": NativeSymbol(("u32", "u32"), "i32"),
    # (handle) -> status
    "snakepit_lock_cancel": NativeSymbol(("u32",), "i32"),
    # (instance, instance_bytes, grace_ms, out_report, out_error) -> status
    "snakepit_reap": NativeSymbol(("buffer", "u32", "u32", "buffer", "buffer"), "i32"),
    # (bytes, bytes_length, payload_bytes, out_extent) -> status
    "snakepit_descriptor_validate": NativeSymbol(("buffer", "u32", "u64", "buffer"), "i32"),
    # (handle, bytes, bytes_length, out_extent) -> status
    "snakepit_descriptor_check": NativeSymbol(("u32", "buffer", "u32", "buffer"), "i32"),
    # (bytes, bytes_length, out_bytes, capacity_bytes, out_length) -> status
    "snakepit_descriptor_normalize": NativeSymbol(
        ("buffer", "u32", "buffer", "u32", "buffer"), "i32"
    ),
}
"""Every symbol the library exports, mirroring ``zig/c_api.zig``."""

STATUS_CODES: Final[dict[str, int]] = {
    name: -index
    for index, name in enumerate(
        (
            "ok",
            "invalid_argument",
            "buffer_too_small",
            "os_error",
            "not_found",
            "already_exists",
            "not_snakepit_region",
            "layout_mismatch",
            "generation_mismatch",
            "corrupt_header",
            "region_too_large",
            "process_bytes_exhausted",
            "process_regions_exhausted",
            "shm_full",
            "invalid_handle",
            "handle_closed",
            "over_release",
            "holder_table_full",
            "region_released",
            "reference_overflow",
            "would_block",
            "timed_out",
            "owner_dead",
            "not_locked",
            "reader_table_full",
            "cancelled",
            "descriptor_malformed",
            "unsupported_dtype",
            "unsupported_device",
            "descriptor_out_of_bounds",
            "descriptor_misaligned",
            "descriptor_overflow",
            "descriptor_region_mismatch",
            "invalid_name",
        )
    )
}
"""Status codes of the library (``zig/status.zig``): 0 is ok, negative values are errors."""

OPS: Final[dict[str, int]] = {
    name: index
    for index, name in enumerate(
        (
            "none",
            "shm_open",
            "ftruncate",
            "fstat",
            "mmap",
            "munmap",
            "shm_unlink",
            "statvfs",
            "getrandom",
            "fallocate",
            "opendir",
            "close",
            "fcntl",
        )
    )
}
"""System operations an error record can name (``zig/os_failure.zig``), by code."""

ERROR_RECORD_WORDS: Final[int] = 2
"""Words in an error record: errno, then the operation's code."""

LIMIT_NAMES: Final[tuple[str, ...]] = (
    "region_payload_bytes_max",
    "process_mapped_bytes_max",
    "process_regions_max",
    "references_max",
    "holder_slots_max",
    "reader_slots_max",
    "ndim_max",
    "payload_offset",
    "payload_alignment",
    "liveness_check_interval_ns",
    "wait_slice_ns",
    "instance_bytes_max",
    "region_name_bytes_max",
    "descriptor_bytes",
    "header_bytes",
)
"""The words ``snakepit_limits`` reports, in order."""

NATIVE_ABI_VERSION: Final[int] = 1
"""The ABI version this module is written for; a library reporting another one is refused."""

PATH_VARIABLE: Final[str] = "SNAKEPIT_NATIVE_LIB"
"""The environment variable that overrides the library's path."""

CRC32C_INPUT_BYTES_MAX: Final[int] = 0xFFFF_FFFF
"""The largest input one ``crc32c`` call takes (the ABI passes lengths as ``u32``)."""

STATUS_NAME_BYTES_MAX: Final[int] = 64
"""The longest status name in bytes (``name_bytes_max`` in ``zig/status.zig``)."""
