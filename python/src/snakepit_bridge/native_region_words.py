"""Futex words in a shared-memory region, from Python: wait (spin, then sleep on a
process-shared futex), publish (a seq_cst store that wakes a parked waiter) and wake, the same
``snakepit_region_*_word`` calls as TypeScript's ``ffi/region_words.ts``.

:class:`RegionWords` is the part of :class:`~snakepit_bridge.native_region.Region` that does
this; it uses the Region's handle, library and error helpers.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Final

from .native import STATUS_CODES
from .native_errors import closed_error

_OK: Final[int] = STATUS_CODES["ok"]
_TIMED_OUT: Final[int] = STATUS_CODES["timed_out"]
_CLOSED_STATUSES: Final[frozenset[int]] = frozenset(
    (STATUS_CODES["handle_closed"], STATUS_CODES["invalid_handle"])
)
NO_PARKED_FLAG: Final[int] = 0xFFFF_FFFF_FFFF_FFFF
"""The parked offset the native word calls take for "no parked flag"."""
WORD_SPIN_NS_MAX: Final[int] = 1_000_000_000
"""The longest spin :meth:`Region.wait_word` accepts, in nanoseconds (``zig/words.zig``)."""
_U32_MAX: Final[int] = 0xFFFF_FFFF
_NO_DEADLINE: Final[int] = 0xFFFF_FFFF_FFFF_FFFF


class RegionWords:
    """Word operations of a Region (mixed into it)."""

    # Provided by Region, with its _live, _functions and _raise_unless_ok.
    name: str
    payload_bytes: int
    _handle: int | None
    _library: Any

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
        the wait, which then ends within one native sleep slice, under a second).
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
        timeout_ns = _NO_DEADLINE if timeout is None else _seconds_to_ns(timeout)
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
    return min(_NO_DEADLINE - 1, max(1, int(timeout * 1e9)))
