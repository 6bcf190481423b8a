"""The reaper from Python: removes shared-memory regions whose every holder is dead (the same
``snakepit_reap`` as TypeScript's ``reapRegions``), and unlinks regions by name."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from .native import ERROR_RECORD_WORDS, STATUS_CODES, NativeLibrary
from .native_errors import error_from_status
from .native_region import INSTANCE_PATTERN, NAME_PATTERN

_OK = STATUS_CODES["ok"]
_NOT_FOUND = STATUS_CODES["not_found"]
__all__ = ["ReapReport", "reap_regions", "unlink_region"]


@dataclass(frozen=True)
class ReapReport:
    """What one run of the reaper did (see ``reap_regions``)."""

    scanned: int
    reaped: int
    spared_live: int
    skipped_young: int
    skipped_foreign: int
    truncated: bool


def reap_regions(
    library: NativeLibrary, *, instance: str = "", grace_ms: int = 10_000
) -> ReapReport:
    """Scans /dev/shm once and unlinks the regions whose every holder is dead (never one that a
    live process holds). With ``instance``, only that instance's regions are examined."""
    if instance and not INSTANCE_PATTERN.fullmatch(instance):
        raise ValueError(f"Cannot reap regions: instance must match {INSTANCE_PATTERN.pattern}")
    if not isinstance(grace_ms, int) or not 0 <= grace_ms <= 0xFFFF_FFFF:
        raise ValueError(
            f"Cannot reap regions: grace_ms must be 0..{0xFFFF_FFFF}, got {grace_ms!r}"
        )
    encoded = instance.encode()
    report = (ctypes.c_uint32 * 6)()
    record = (ctypes.c_uint32 * ERROR_RECORD_WORDS)()
    status = library.functions.snakepit_reap(
        encoded or None, len(encoded), grace_ms, report, record
    )
    if status != _OK:
        raise error_from_status(library, "reap", status, record=record, what="Cannot reap regions")
    scanned, reaped, spared, young, foreign, truncated = report
    return ReapReport(scanned, reaped, spared, young, foreign, truncated == 1)


def unlink_region(library: NativeLibrary, name: str) -> bool:
    """Removes the name of the region ``name`` (mappings stay valid, later opens fail with
    ``not_found``); True when this call removed it, False when no region had it.

    Raises ``ValueError`` for a name that is not ``/snakepit-<instance>-<32 hex>`` and
    :class:`SharedMemoryError` (``os_error`` with errno) when the system refuses.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"Cannot unlink a shared-memory region: name must match {NAME_PATTERN.pattern}, "
            f"got {name!r}"
        )
    encoded = name.encode()
    record = (ctypes.c_uint32 * ERROR_RECORD_WORDS)()
    status = library.functions.snakepit_region_unlink(encoded, len(encoded), record)
    if status == _OK:
        return True
    if status == _NOT_FOUND:
        return False
    raise error_from_status(
        library,
        "unlink",
        status,
        record=record,
        region_name=name,
        what=f"Cannot unlink shared-memory region {name}",
    )
