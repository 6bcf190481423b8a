"""Shared-memory regions from Python: the same regions, reference counts and RW locks as
TypeScript's ``Region`` (``ffi/region.ts``), through the same native library.

Example::

    from snakepit_bridge import native
    from snakepit_bridge.native_region import Region

    library = native.load()
    with Region.create(library, 1024, instance="docs") as region:
        region.view()[:3] = b"abc"
        with region.lock_exclusive(timeout=1.0) as lock:
            assert not lock.owner_died

Views never outlive the mapping: ``view()`` and ``numpy()`` are served from a Python ``mmap`` of
the region, which refuses to close while any memoryview or array made from it is alive, so
``close()`` raises ``views_alive`` (and leaves the region open) instead of unmapping memory an
array still points at. Delete the arrays, then close.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .native import ERROR_RECORD_WORDS, STATUS_CODES, NativeLibrary
from .native_errors import SharedMemoryError, closed_error, error_from_status
from .native_region_lock import LockMode, RegionLock, RegionLocking
from .native_region_words import NO_PARKED_FLAG, WORD_SPIN_NS_MAX, RegionWords

if TYPE_CHECKING:
    import numpy

INSTANCE_PATTERN: Final = re.compile(r"[A-Za-z0-9_]{1,20}")
NAME_PATTERN: Final = re.compile(r"/snakepit-[A-Za-z0-9_]{1,20}-[0-9a-f]{32}")
PAYLOAD_BYTES_MAX: Final[int] = 64 << 30
NO_DEADLINE: Final[int] = 0xFFFF_FFFF_FFFF_FFFF
_OK: Final[int] = STATUS_CODES["ok"]
_INFO_FIELDS: Final[tuple[str, ...]] = (
    "generation",
    "total_bytes",
    "payload_offset",
    "payload_bytes",
    "creator_pid",
    "flags",
    "creation_time_ns",
    "reference_count",
    "holders",
    "references_held",
    "lock_state",
    "lock_owner_deaths",
    "shared_locks_held",
    "exclusive_lock_held",
)


@dataclass(frozen=True)
class RegionInfo:
    """A region's state, from its header, and what this Region holds."""

    generation: int
    total_bytes: int
    payload_offset: int
    payload_bytes: int
    creator_pid: int
    flags: int
    creation_time_ns: int
    reference_count: int
    holders: int
    references_held: int
    lock_state: int
    lock_owner_deaths: int
    shared_locks_held: int
    exclusive_lock_held: int


class Region(RegionLocking, RegionWords):
    """A shared-memory region mapped into this process. Use as a context manager.

    Its RW lock comes from :class:`RegionLocking`, its futex words (wait, publish, wake) from
    :class:`RegionWords`."""

    def __init__(self, library: NativeLibrary, handle: int, name: str) -> None:
        self._library = library
        self._handle: int | None = handle
        self.name = name
        info = self.info()
        self.payload_bytes = info.payload_bytes
        self._payload_offset = info.payload_offset
        self._total_bytes = info.total_bytes
        self._mapping: mmap.mmap | None = None
        self._views: list[memoryview] = []

    @classmethod
    def create(
        cls,
        library: NativeLibrary,
        payload_bytes: int,
        *,
        instance: str = "default",
        reserve: bool = False,
    ) -> Region:
        """Creates a region (mode 0600) whose first reference this Region holds.

        Raises ``ValueError`` for arguments out of range and :class:`SharedMemoryError` for
        ``shm_full`` (with how to enlarge /dev/shm), limits and system failures.
        """
        if (
            not isinstance(payload_bytes, int)
            or isinstance(payload_bytes, bool)
            or payload_bytes < 1
        ):
            raise ValueError(
                "Cannot create a shared-memory region: payload_bytes must be a positive integer, "
                f"got {payload_bytes!r}"
            )
        if not isinstance(instance, str) or not INSTANCE_PATTERN.fullmatch(instance):
            raise ValueError(
                "Cannot create a shared-memory region: instance must match "
                f"{INSTANCE_PATTERN.pattern}, got {instance!r}"
            )
        instance_bytes = instance.encode()
        handle = ctypes.c_uint32()
        record = (ctypes.c_uint32 * ERROR_RECORD_WORDS)()
        status = library.functions.snakepit_region_create(
            instance_bytes,
            len(instance_bytes),
            payload_bytes,
            1 if reserve else 0,
            ctypes.byref(handle),
            record,
        )
        if status != _OK:
            detail = None
            if status == STATUS_CODES["shm_full"]:
                detail = (
                    f"{payload_bytes + 4096} bytes needed, {library.shm_available_bytes()} free"
                )
            raise error_from_status(
                library,
                "create",
                status,
                record=record,
                what=f"Cannot create a shared-memory region of {payload_bytes} bytes",
                detail=detail,
            )
        return cls(library, handle.value, _name_of(library, handle.value))

    @classmethod
    def open(
        cls, library: NativeLibrary, name: str, *, generation: int = 0, retain: bool = True
    ) -> Region:
        """Opens and maps the region ``name``; by default holds a reference until closed."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"Cannot open a shared-memory region: name must match {NAME_PATTERN.pattern}, "
                f"got {name!r}"
            )
        if not isinstance(generation, int) or generation < 0:
            raise ValueError(
                f"Cannot open a shared-memory region: generation must be >= 0, got {generation!r}"
            )
        name_bytes = name.encode()
        handle = ctypes.c_uint32()
        record = (ctypes.c_uint32 * ERROR_RECORD_WORDS)()
        status = library.functions.snakepit_region_open(
            name_bytes,
            len(name_bytes),
            generation,
            1 if retain else 0,
            ctypes.byref(handle),
            record,
        )
        if status != _OK:
            raise error_from_status(
                library,
                "open",
                status,
                record=record,
                region_name=name,
                what=f"Cannot open shared-memory region {name}",
            )
        return cls(library, handle.value, name)

    @property
    def closed(self) -> bool:
        return self._handle is None

    def view(self) -> memoryview:
        """The payload as a writable memoryview (no copy), released by :meth:`close`."""
        mapping = self._map("view")
        start = self._payload_offset
        whole = memoryview(mapping)
        view = whole[start : start + self.payload_bytes]
        whole.release()
        self._views.append(view)
        return view

    def numpy(
        self, dtype: Any, shape: tuple[int, ...] | None = None, offset: int = 0
    ) -> numpy.ndarray:
        """A numpy array over the payload (no copy), C-contiguous from byte ``offset``."""
        import numpy

        data_type = numpy.dtype(dtype)
        count = -1 if shape is None else int(numpy.prod(shape, dtype=numpy.int64))
        array = numpy.frombuffer(self.view(), dtype=data_type, count=count, offset=offset)
        return array if shape is None else array.reshape(shape)

    def info(self) -> RegionInfo:
        """The region's state and what this Region holds."""
        words = (ctypes.c_uint64 * len(_INFO_FIELDS))()
        count = ctypes.c_uint32()
        status = self._functions("info").snakepit_region_info(
            self._live("info"), words, len(words), ctypes.byref(count)
        )
        self._raise_unless_ok("info", status, f"Cannot read region {self.name}")
        return RegionInfo(*words)

    def retain(self) -> None:
        """Adds a reference held by this Region until :meth:`release` or :meth:`close`."""
        status = self._functions("retain").snakepit_region_retain(self._live("retain"))
        self._raise_unless_ok("retain", status, f"Cannot retain region {self.name}")

    def release(self) -> bool:
        """Gives back a reference; True when it was the last and the region was unlinked."""
        unlinked = ctypes.c_uint32()
        record = (ctypes.c_uint32 * ERROR_RECORD_WORDS)()
        status = self._functions("release").snakepit_region_release(
            self._live("release"), ctypes.byref(unlinked), record
        )
        self._raise_unless_ok("release", status, f"Cannot release region {self.name}", record)
        return unlinked.value == 1

    def bump_generation(self) -> int:
        """Moves the region to its next generation; returns it."""
        generation = ctypes.c_uint64()
        status = self._functions("bump_generation").snakepit_region_bump_generation(
            self._live("bump_generation"), ctypes.byref(generation)
        )
        self._raise_unless_ok("bump_generation", status, f"Cannot bump region {self.name}")
        return generation.value

    def check_descriptor(self, encoded: bytes) -> tuple[int, int]:
        """Proves ``encoded`` fits this region at its generation; returns its byte extent."""
        extent = (ctypes.c_uint64 * 2)()
        status = self._functions("check_descriptor").snakepit_descriptor_check(
            self._live("check_descriptor"), encoded, len(encoded), extent
        )
        self._raise_unless_ok(
            "check_descriptor", status, f"Cannot use a descriptor with region {self.name}"
        )
        return extent[0], extent[1]

    def close(self) -> None:
        """Releases the views, locks and references this Region holds, and unmaps it.

        Raises :class:`SharedMemoryError` ``views_alive`` (leaving the region open) while arrays
        or memoryviews made from :meth:`view` / :meth:`numpy` are still alive.
        """
        if self._handle is None:
            return
        self._release_views()
        handle, self._handle = self._handle, None
        self._library.functions.snakepit_region_close(handle, None)

    def __enter__(self) -> Region:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _release_views(self) -> None:
        try:
            for view in self._views:
                view.release()
            if self._mapping is not None:
                self._mapping.close()
        except BufferError as error:
            raise SharedMemoryError(
                f"Cannot close region {self.name}: arrays or memoryviews made from it are still "
                "alive [views_alive]. Delete them (and anything sliced from them), then close.",
                op="close",
                status=0,
                status_name="views_alive",
                path=self._library.path,
                region_name=self.name,
            ) from error
        self._views.clear()
        self._mapping = None

    def _map(self, op: str) -> mmap.mmap:
        handle = self._live(op)
        if self._mapping is None:
            descriptor = ctypes.c_int32()
            record = (ctypes.c_uint32 * ERROR_RECORD_WORDS)()
            status = self._library.functions.snakepit_region_duplicate_fd(
                handle, ctypes.byref(descriptor), record
            )
            self._raise_unless_ok(op, status, f"Cannot map region {self.name}", record)
            try:
                self._mapping = mmap.mmap(descriptor.value, self._total_bytes)
            finally:
                os.close(descriptor.value)
        return self._mapping

    def _functions(self, op: str) -> ctypes.CDLL:
        self._live(op)
        return self._library.functions

    def _live(self, op: str) -> int:
        if self._handle is None:
            raise closed_error(self._library, op, self.name)
        return self._handle

    def _raise_unless_ok(
        self, op: str, status: int, what: str, record: ctypes.Array[ctypes.c_uint32] | None = None
    ) -> None:
        if status == _OK:
            return
        raise error_from_status(
            self._library, op, status, record=record, region_name=self.name, what=what
        )


def _name_of(library: NativeLibrary, handle: int) -> str:
    buffer = ctypes.create_string_buffer(64)
    length = ctypes.c_uint32()
    status = library.functions.snakepit_region_name(handle, buffer, 64, ctypes.byref(length))
    if status != _OK:
        raise error_from_status(library, "name", status)
    return buffer.raw[: length.value].decode()


__all__ = [
    "INSTANCE_PATTERN",
    "LockMode",
    "NAME_PATTERN",
    "NO_DEADLINE",
    "NO_PARKED_FLAG",
    "PAYLOAD_BYTES_MAX",
    "WORD_SPIN_NS_MAX",
    "Region",
    "RegionInfo",
    "RegionLock",
]
