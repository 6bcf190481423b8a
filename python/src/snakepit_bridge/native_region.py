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
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from .native import ERROR_RECORD_WORDS, STATUS_CODES, NativeLibrary
from .native_errors import SharedMemoryError, closed_error, error_from_status

if TYPE_CHECKING:
    import numpy

INSTANCE_PATTERN: Final = re.compile(r"[A-Za-z0-9_]{1,20}")
NAME_PATTERN: Final = re.compile(r"/snakepit-[A-Za-z0-9_]{1,20}-[0-9a-f]{32}")
PAYLOAD_BYTES_MAX: Final[int] = 64 << 30
NO_DEADLINE: Final[int] = 0xFFFF_FFFF_FFFF_FFFF
LockMode = Literal["shared", "exclusive"]
_MODES: Final[dict[str, int]] = {"shared": 0, "exclusive": 1}
_OK: Final[int] = STATUS_CODES["ok"]
_OWNER_DEAD: Final[int] = STATUS_CODES["owner_dead"]
_WOULD_BLOCK: Final[int] = STATUS_CODES["would_block"]
_TIMED_OUT: Final[int] = STATUS_CODES["timed_out"]
_NOT_FOUND: Final[int] = STATUS_CODES["not_found"]
_CLOSED_STATUSES: Final[frozenset[int]] = frozenset(
    (STATUS_CODES["handle_closed"], STATUS_CODES["invalid_handle"])
)
NO_PARKED_FLAG: Final[int] = 0xFFFF_FFFF_FFFF_FFFF
"""The parked offset the native word calls take for "no parked flag"."""
WORD_SPIN_NS_MAX: Final[int] = 1_000_000_000
"""The longest spin :meth:`Region.wait_word` accepts, in nanoseconds (``zig/words.zig``)."""
_U32_MAX: Final[int] = 0xFFFF_FFFF
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


class RegionLock:
    """A held lock; release it with :meth:`release` or a ``with`` block.

    ``owner_died`` is true when the previous holder died holding the lock and this acquisition
    recovered it: the data may be half-written.
    """

    def __init__(self, region: Region, mode: LockMode, owner_died: bool) -> None:
        self.mode: LockMode = mode
        self.owner_died = owner_died
        self._region: Region | None = region

    @property
    def released(self) -> bool:
        return self._region is None

    def release(self) -> None:
        """Releases the lock; idempotent, and a no-op once the Region is closed."""
        region, self._region = self._region, None
        if region is not None and not region.closed:
            region._unlock(self.mode)

    def __enter__(self) -> RegionLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class Region:
    """A shared-memory region mapped into this process. Use as a context manager."""

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

    def try_lock_shared(self) -> RegionLock | None:
        """The shared lock if it is free now, else None."""
        return self._acquire("shared", 0, "try_lock_shared")

    def try_lock_exclusive(self) -> RegionLock | None:
        """The exclusive lock if it is free now, else None."""
        return self._acquire("exclusive", 0, "try_lock_exclusive")

    def lock_shared(self, timeout: float | None = None) -> RegionLock:
        """Waits (``timeout`` seconds, None: no limit) for the shared lock; the GIL is released."""
        return self._lock("shared", timeout, "lock_shared")

    def lock_exclusive(self, timeout: float | None = None) -> RegionLock:
        """Waits for the exclusive lock (new readers stop at once; writers are preferred)."""
        return self._lock("exclusive", timeout, "lock_exclusive")

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

    def payload_address(self) -> int:
        """The payload's address in the library's own mapping in this process (not the
        ``mmap`` behind :meth:`view`); valid until :meth:`close`."""
        address = ctypes.c_uint64()
        payload_bytes = ctypes.c_uint64()
        status = self._functions("payload_address").snakepit_region_payload(
            self._live("payload_address"), ctypes.byref(address), ctypes.byref(payload_bytes)
        )
        self._raise_unless_ok("payload_address", status, f"Cannot map region {self.name}")
        return address.value

    def publish_word(self, word_offset: int, value: int, parked_offset: int | None = None) -> bool:
        """Stores ``value`` into the u32 at payload byte ``word_offset`` (seq_cst). With
        ``parked_offset``, clears that parked flag and, when a waiter had raised it, wakes the
        word's waiters; returns whether it did. Never blocks.

        Raises ``TypeError`` / ``ValueError`` naming a bad argument (offsets are multiples of 4
        inside the payload; the flag is not the word) and :class:`SharedMemoryError` ``closed``.
        """
        op = "publish_word"
        handle = self._live(op)
        self._check_offset(op, "word_offset", word_offset)
        parked = self._parked(op, parked_offset, word_offset)
        _check_u32(op, self.name, "value", value)
        out = _out_word()
        status = self._library.functions.snakepit_region_publish_word(
            handle, word_offset, value, parked, out.reference
        )
        if status != _OK:
            self._raise_word_failure(op, status)
        return out.word.value != 0

    def wake_word(self, word_offset: int) -> None:
        """Wakes every waiter on the u32 at payload byte ``word_offset``, whatever its value."""
        op = "wake_word"
        handle = self._live(op)
        self._check_offset(op, "word_offset", word_offset)
        status = self._library.functions.snakepit_region_wake_word(handle, word_offset)
        if status != _OK:
            self._raise_word_failure(op, status)

    def wait_word(
        self,
        word_offset: int,
        expected: int,
        *,
        parked_offset: int | None = None,
        spin_ns: int = 0,
        timeout: float | None = None,
    ) -> tuple[int, bool]:
        """Waits until the u32 at payload byte ``word_offset`` differs from ``expected``: spins
        ``spin_ns`` (0 to :data:`WORD_SPIN_NS_MAX`), then, unless ``timeout`` is 0, sleeps on a
        process-shared futex for up to ``timeout`` seconds more (None: no limit) with the parked
        flag at ``parked_offset`` raised. The GIL is released for the whole wait.

        Returns ``(value, timed_out)``: the word's last value, and whether the timeout passed with
        it unchanged. Raises ``TypeError`` / ``ValueError`` naming a bad argument, and
        :class:`SharedMemoryError` ``closed`` (also when another thread closes this Region during
        the wait, which then ends within 10 ms).
        """
        op = "wait_word"
        handle = self._live(op)
        self._check_offset(op, "word_offset", word_offset)
        _check_u32(op, self.name, "expected", expected)
        parked = self._parked(op, parked_offset, word_offset)
        if not isinstance(spin_ns, int) or isinstance(spin_ns, bool):
            raise TypeError(
                f"Cannot {op} on region {self.name}: spin_ns must be an int, got {spin_ns!r}"
            )
        if not 0 <= spin_ns <= WORD_SPIN_NS_MAX:
            raise ValueError(
                f"Cannot {op} on region {self.name}: spin_ns must be from 0 to "
                f"{WORD_SPIN_NS_MAX}, got {spin_ns}"
            )
        if timeout is not None and (
            not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout >= 0
        ):
            raise ValueError(
                f"Cannot {op} on region {self.name}: timeout must be None or a number of seconds "
                f">= 0, got {timeout!r}"
            )
        timeout_ns = NO_DEADLINE if timeout is None else _seconds_to_ns(timeout)
        value = ctypes.c_uint32()
        status = self._library.functions.snakepit_region_wait_word(
            handle, word_offset, expected, parked, spin_ns, timeout_ns, ctypes.byref(value)
        )
        if status == _OK:
            return value.value, False
        if status == _TIMED_OUT:
            return value.value, True
        self._raise_word_failure(op, status)
        raise AssertionError("unreachable: _raise_word_failure raises")

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

    def _check_offset(self, op: str, name: str, offset: object) -> None:
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise TypeError(
                f"Cannot {op} on region {self.name}: {name} must be an int, got {offset!r}"
            )
        if offset < 0 or offset % 4 != 0 or offset + 4 > self.payload_bytes:
            raise ValueError(
                f"Cannot {op} on region {self.name}: {name} must be a multiple of 4 from 0 to "
                f"{self.payload_bytes - 4} (the payload is {self.payload_bytes} bytes), "
                f"got {offset}"
            )

    def _parked(self, op: str, parked_offset: int | None, word_offset: int) -> int:
        if parked_offset is None:
            return NO_PARKED_FLAG
        self._check_offset(op, "parked_offset", parked_offset)
        if parked_offset == word_offset:
            raise ValueError(
                f"Cannot {op} on region {self.name}: parked_offset must differ from word_offset, "
                f"got {parked_offset} for both"
            )
        return parked_offset

    def _raise_word_failure(self, op: str, status: int) -> None:
        if status in _CLOSED_STATUSES and self._handle is None:
            raise closed_error(self._library, op, self.name)
        self._raise_unless_ok(op, status, f"Cannot {op} on region {self.name}")

    def _lock(self, mode: LockMode, timeout: float | None, op: str) -> RegionLock:
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise ValueError(f"Cannot {op}: timeout must be None or a number >= 0, got {timeout!r}")
        timeout_ns = NO_DEADLINE if timeout is None else max(1, int(timeout * 1e9))
        lock = self._acquire(mode, timeout_ns, op)
        if lock is None:
            self._raise_unless_ok(op, STATUS_CODES["timed_out"], f"Cannot {op} region {self.name}")
        assert lock is not None
        return lock

    def _acquire(self, mode: LockMode, timeout_ns: int, op: str) -> RegionLock | None:
        status = self._functions(op).snakepit_lock_acquire(
            self._live(op), _MODES[mode], timeout_ns, 0
        )
        if status in (_OK, _OWNER_DEAD):
            return RegionLock(self, mode, status == _OWNER_DEAD)
        if status == _WOULD_BLOCK and timeout_ns == 0:
            return None
        self._raise_unless_ok(op, status, f"Cannot {op} region {self.name}")
        return None

    def _unlock(self, mode: LockMode) -> None:
        status = self._functions("unlock").snakepit_lock_release(self._live("unlock"), _MODES[mode])
        self._raise_unless_ok("unlock", status, f"Cannot unlock region {self.name}")

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


class _OutWord(threading.local):
    """One u32 out-parameter per thread, so that publish_word allocates nothing per call."""

    def __init__(self) -> None:
        self.word = ctypes.c_uint32()
        self.reference = ctypes.byref(self.word)


_out_words: Final = _OutWord()


def _out_word() -> _OutWord:
    return _out_words


def _check_u32(op: str, region_name: str, name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(
            f"Cannot {op} on region {region_name}: {name} must be an int, got {value!r}"
        )
    if not 0 <= value <= _U32_MAX:
        raise ValueError(
            f"Cannot {op} on region {region_name}: {name} must be from 0 to {_U32_MAX}, got {value}"
        )


def _seconds_to_ns(timeout: float) -> int:
    if timeout == 0:
        return 0
    return min(NO_DEADLINE - 1, max(1, int(timeout * 1e9)))


def _name_of(library: NativeLibrary, handle: int) -> str:
    buffer = ctypes.create_string_buffer(64)
    length = ctypes.c_uint32()
    status = library.functions.snakepit_region_name(handle, buffer, 64, ctypes.byref(length))
    if status != _OK:
        raise error_from_status(library, "name", status)
    return buffer.raw[: length.value].decode()
