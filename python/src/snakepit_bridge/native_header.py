"""The region header's layout, mirrored from ``zig/header.zig``, and a reader that decodes a
header from raw bytes without the native library (e.g. from ``/dev/shm/snakepit-*``).
``python/tests/test_native_region.py`` checks the mirror against ``snakepit_header_layout``."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

FIELDS: Final[dict[str, tuple[int, int]]] = {
    "magic": (0, 8),
    "layout_version": (8, 4),
    "header_bytes": (12, 4),
    "generation": (16, 8),
    "total_bytes": (24, 8),
    "payload_offset": (32, 8),
    "payload_bytes": (40, 8),
    "creator_pid": (48, 4),
    "flags": (52, 4),
    "creation_time_ns": (56, 8),
    "lock_state": (128, 4),
    "lock_drain_sequence": (132, 4),
    "lock_owner_deaths": (136, 4),
    "reference_count": (192, 4),
    "holders": (256, 512),
    "readers": (768, 512),
}
"""Header fields in the order the library reports them: field -> (offset, bytes)."""

MAGIC: Final[int] = 0x5449_5045_4B41_4E53
HEADER_BYTES: Final[int] = 1280
_FORMATS: Final[dict[int, str]] = {4: "<I", 8: "<Q"}


@dataclass(frozen=True)
class RegionHeader:
    """A decoded header (a snapshot). Holders and readers list (pid, count) of used slots."""

    layout_version: int
    generation: int
    total_bytes: int
    payload_offset: int
    payload_bytes: int
    creator_pid: int
    flags: int
    creation_time_ns: int
    lock_state: int
    lock_owner_deaths: int
    reference_count: int
    holders: list[tuple[int, int]]
    readers: list[tuple[int, int]]


def read_region_header(data: bytes) -> RegionHeader:
    """Decodes the first 1280 bytes of a region; ``ValueError`` if short or not Snakepit's."""
    if len(data) < HEADER_BYTES:
        raise ValueError(f"Cannot read a region header: it needs {HEADER_BYTES} bytes")

    def value(name: str) -> int:
        offset, size = FIELDS[name]
        return int(struct.unpack_from(_FORMATS[size], data, offset)[0])

    if value("magic") != MAGIC:
        raise ValueError("Cannot read a region header: the magic is not Snakepit's")

    def slots(name: str) -> list[tuple[int, int]]:
        offset, size = FIELDS[name]
        words = struct.unpack_from(f"<{size // 8}Q", data, offset)
        return [(word >> 32, word & 0xFFFF_FFFF) for word in words if word]

    return RegionHeader(
        layout_version=value("layout_version"),
        generation=value("generation"),
        total_bytes=value("total_bytes"),
        payload_offset=value("payload_offset"),
        payload_bytes=value("payload_bytes"),
        creator_pid=value("creator_pid"),
        flags=value("flags"),
        creation_time_ns=value("creation_time_ns"),
        lock_state=value("lock_state"),
        lock_owner_deaths=value("lock_owner_deaths"),
        reference_count=value("reference_count"),
        holders=slots("holders"),
        readers=slots("readers"),
    )
