"""The fast lane's rings: a request ring and a response ring in one shared-memory region.

The host creates the region (a native-core region) and names it on the worker's command line;
the worker maps it. Layout (byte offsets from the payload start; every word little-endian u32):

    0    magic "SPLN", version, epoch (random, non-zero), slot_bytes, slot_count
    64   request head   (host publishes: frames written)  | 68  worker parked on it
    128  request tail   (worker publishes: frames read)   | 132 calls started (1 + last frame)
    192  response head  (worker publishes)                 | 196 host parked (doorbell wanted)
    256  response tail  (host publishes)                   | 260 worker parked waiting for space
    512  request slots, then response slots: slot_count x slot_bytes each

A slot is a 16-byte header (sequence = the frame's index, epoch, length, reserved) and a
msgpack array. A frame that does not fit a slot travels in a region of its own (a spill frame
names it). Counters are u32 and wrap; a slot is trusted only when its sequence and epoch match,
so a ring left by a dead process (or a torn write) is refused, never read as data.

Kept in step with src/bridge/lane/ring.ts (tests on both sides check the same layout).
"""

from __future__ import annotations

import ctypes
import functools
import struct
from collections.abc import Callable
from typing import Any

from snakepit_bridge.lane_frames import (  # noqa: F401 - re-exported: the lane's frames
    CALL_MARKER,
    FRAME_SPILL,
    REQ_CALL,
    REQ_CANCEL,
    REQ_CREDIT,
    RESP_END,
    RESP_ERROR,
    RESP_EXPIRED,
    RESP_ITEM,
    RESP_RESULT,
    RESP_STREAM_ERROR,
    RESULT_HEADER,
    RESULT_MARKER,
    LaneProtocolError,
    decode_frame,
    encode_call,
    encode_result,
)
from snakepit_bridge.native import NativeLibrary
from snakepit_bridge.native_region import Region
from snakepit_bridge.native_symbols import STATUS_CODES

LANE_MAGIC = 0x4E4C5053  # "SPLN"
LANE_VERSION = 1
HEADER_BYTES = 512
SLOT_HEADER_BYTES = 16

OFF_MAGIC = 0
OFF_VERSION = 4
OFF_EPOCH = 8
OFF_SLOT_BYTES = 12
OFF_SLOT_COUNT = 16
OFF_REQ_HEAD = 64
OFF_REQ_PARKED = 68
OFF_REQ_TAIL = 128
OFF_REQ_STARTED = 132
OFF_RESP_HEAD = 192
OFF_HOST_PARKED = 196
OFF_RESP_TAIL = 256
OFF_RESP_SPACE_PARKED = 260
NO_FLAG = (1 << 64) - 1
U32_MASK = 0xFFFFFFFF

SLOT_BYTES_MIN = 256
SLOT_BYTES_MAX = 1 << 20
SLOT_COUNT_MAX = 1 << 12

_SLOT_HEADER = struct.Struct("<IIII")
_WORD = struct.Struct("<I")
_OK = STATUS_CODES["ok"]
OK_STATUS = _OK
_TIMED_OUT = STATUS_CODES["timed_out"]
# A slot's header and a result frame's header, packed in one go (`Ring.write_result`).
_SLOT_RESULT_HEADER = struct.Struct("<IIII" + RESULT_HEADER.format[1:])


class Ring:
    """One direction of the lane: slots in the region, indices read and written through it."""

    __slots__ = ("_view", "_base", "_slot_bytes", "_mask", "_epoch", "capacity")

    def __init__(self, view: memoryview, base: int, slot_bytes: int, slot_count: int, epoch: int):
        self._view = view
        self._base = base
        self._slot_bytes = slot_bytes
        self._mask = slot_count - 1
        self._epoch = epoch
        self.capacity = slot_bytes - SLOT_HEADER_BYTES

    def read(self, index: int) -> bytes:
        """The frame bytes of slot `index`; LaneProtocolError when the slot is not that frame."""
        offset = self._base + (index & self._mask) * self._slot_bytes
        sequence, epoch, length, _ = _SLOT_HEADER.unpack_from(self._view, offset)
        if epoch != self._epoch:
            raise LaneProtocolError(
                f"slot {index} carries epoch {epoch:#x}, the lane's is {self._epoch:#x} "
                "(a stale ring from another process)"
            )
        if sequence != index:
            raise LaneProtocolError(
                f"slot {index & self._mask} carries frame {sequence}, expected frame {index} "
                "(a stale or torn slot)"
            )
        if length == 0 or length > self.capacity:
            raise LaneProtocolError(
                f"frame {index} claims {length} bytes; a slot holds 1 to {self.capacity}"
            )
        start = offset + SLOT_HEADER_BYTES
        return bytes(self._view[start : start + length])

    def write_result(
        self,
        index: int,
        request_id: bytes,
        data: bytes,
        encoding: int,
        decode_ns: int,
        execute_ns: int,
        encode_ns: int,
    ) -> bool:
        """Writes the result frame `encode_result` would make straight into slot `index` (no
        frame bytes built first); False, writing nothing, when it does not fit a slot."""
        id_length = len(request_id)
        length = RESULT_HEADER.size + id_length + len(data)
        if length > self.capacity:
            return False
        view = self._view
        offset = self._base + (index & self._mask) * self._slot_bytes
        start = offset + _SLOT_RESULT_HEADER.size
        view[start : start + id_length] = request_id
        start += id_length
        view[start : start + len(data)] = data
        _SLOT_RESULT_HEADER.pack_into(
            view, offset, index & U32_MASK, self._epoch, length, 0,
            RESULT_MARKER, encoding, id_length, len(data), decode_ns, execute_ns, encode_ns,
        )
        return True

    def patch_header(self, index: int, word: int, value: int) -> None:
        """Overwrites word `word` (0 sequence, 1 epoch, 2 length) of slot `index`'s header: for
        fault-injection tests of the host's checks."""
        assert 0 <= word < 4, word
        offset = self._base + (index & self._mask) * self._slot_bytes + 4 * word
        _WORD.pack_into(self._view, offset, value & U32_MASK)

    def write(self, index: int, frame: bytes) -> None:
        length = len(frame)
        assert 0 < length <= self.capacity, length
        offset = self._base + (index & self._mask) * self._slot_bytes
        start = offset + SLOT_HEADER_BYTES
        self._view[start : start + length] = frame
        _SLOT_HEADER.pack_into(self._view, offset, index & U32_MASK, self._epoch, length, 0)


class Lane:
    """The worker's end of a lane: maps the region, checks its header, reads and writes frames.

    Waiting and publishing go through the native library (futexes, seq_cst stores); the bytes
    move through a memoryview of the library's own mapping. The waits and publishes call the
    native functions directly, without `Region.wait_word`'s argument checks: the offsets are
    this module's constants, and the checks would cost more than the call on the hot path.
    """

    def __init__(self, library: NativeLibrary, name: str, *, instance: str = "default") -> None:
        self.name = name
        self._library = library
        self._instance = instance
        # The host holds the region's reference; this mapping lives as long as the worker.
        self._region = Region.open(library, name, retain=False)
        try:
            self._attach()
        except BaseException:
            self._region.close()
            raise

    def _attach(self) -> None:
        region = self._region
        payload = region.payload_bytes
        if payload < HEADER_BYTES:
            raise LaneProtocolError(f"lane region {self.name} is {payload} bytes, under a header")
        view = region.view()
        magic, version, epoch, slot_bytes, slot_count = struct.unpack_from("<5I", view, 0)
        if magic != LANE_MAGIC:
            raise LaneProtocolError(f"region {self.name} is not a fast lane (magic {magic:#x})")
        if version != LANE_VERSION:
            raise LaneProtocolError(
                f"the host speaks fast-lane protocol {version}, this worker speaks "
                f"{LANE_VERSION}: install matching versions of snakepit and snakepit-bridge"
            )
        if (
            epoch == 0
            or not SLOT_BYTES_MIN <= slot_bytes <= SLOT_BYTES_MAX
            or slot_bytes % 8
            or not 1 <= slot_count <= SLOT_COUNT_MAX
            or slot_count & (slot_count - 1)
            or HEADER_BYTES + 2 * slot_bytes * slot_count > payload
        ):
            raise LaneProtocolError(
                f"lane region {self.name} has a bad layout: epoch {epoch:#x}, {slot_count} slots "
                f"of {slot_bytes} bytes in a {payload}-byte payload"
            )
        self.epoch = epoch
        self.slot_bytes = slot_bytes
        self.slot_count = slot_count
        self._view = view
        self.requests = Ring(view, HEADER_BYTES, slot_bytes, slot_count, epoch)
        self.responses = Ring(
            view, HEADER_BYTES + slot_bytes * slot_count, slot_bytes, slot_count, epoch
        )
        functions = self._library.functions
        self._wait = functions.snakepit_region_wait_word
        # Publishing and waking never block: they keep the GIL (see native.GIL_HELD).
        self._publish = self._library.functions_holding_gil.snakepit_region_publish_word
        self._wake = self._library.functions_holding_gil.snakepit_region_wake_word
        self._handle = region._handle

    @staticmethod
    def out_word() -> ctypes.c_uint32:
        """An out-word for wait/publish: one per thread that calls them (they write it)."""
        return ctypes.c_uint32()

    @property
    def payload_view(self) -> memoryview:
        """The region's payload (header and both rings), for the C lean loop."""
        return self._view

    # --- words --------------------------------------------------------------------------

    def load(self, offset: int) -> int:
        """A plain read of a header word: a hint (the native wait gives the ordered value)."""
        return _WORD.unpack_from(self._view, offset)[0]

    def store(self, offset: int, value: int) -> None:
        """A plain store of a header word this process alone writes (the started counter)."""
        _WORD.pack_into(self._view, offset, value & U32_MASK)

    def wait(
        self,
        offset: int,
        expected: int,
        parked_offset: int,
        spin_ns: int,
        timeout_ns: int,
        out: ctypes.c_uint32,
    ) -> int | None:
        """Spins, then parks on the word while it equals `expected`; its new value, or None
        on timeout. Releases the GIL for the whole wait."""
        status = self._wait(
            self._handle, offset, expected, parked_offset, spin_ns, timeout_ns, ctypes.byref(out)
        )
        if status == _OK:
            return out.value
        if status == _TIMED_OUT:
            return None
        raise LaneProtocolError(
            f"waiting on lane word {offset} failed: {self._library.status_name(status)}"
        )

    def publish(
        self, offset: int, value: int, parked_offset: int, out: ctypes.c_uint32
    ) -> bool:
        """Stores the word (seq_cst); wakes its waiters and returns True when the flag at
        `parked_offset` (NO_FLAG: none) said someone was parked."""
        status = self._publish(
            self._handle, offset, value & U32_MASK, parked_offset, ctypes.byref(out)
        )
        if status != _OK:
            raise self.publish_failed(offset, status)
        return out.value != 0

    def publisher(self, offset: int) -> Callable[[int, int, Any], int]:
        """The native publish bound to this lane and the word at `offset`, for a hot path that
        calls it as `(value, parked_offset, ctypes.byref(out))` and checks the status itself
        (`publish_failed`): one C-level call, no Python frame."""
        return functools.partial(self._publish, self._handle, offset)

    def publish_failed(self, offset: int, status: int) -> LaneProtocolError:
        """The error of a publish (by `publisher`) that returned `status`."""
        return LaneProtocolError(
            f"publishing lane word {offset} failed: {self._library.status_name(status)}"
        )

    def wake(self, offset: int) -> None:
        self._wake(self._handle, offset)

    # --- spilled frames -------------------------------------------------------------------

    def read_spill(self, name: str, length: int) -> bytes:
        """The frame the host put in a region of its own; unlinks the name once read."""
        from snakepit_bridge.native_reaper import unlink_region

        if not isinstance(name, str) or not isinstance(length, int) or length < 1:
            raise LaneProtocolError(f"bad spill frame: region {name!r}, {length!r} bytes")
        with Region.open(self._library, name) as region:
            if length > region.payload_bytes:
                raise LaneProtocolError(
                    f"spill region {name} holds {region.payload_bytes} bytes, the frame "
                    f"claims {length}"
                )
            view = region.view()
            try:
                data = bytes(view[:length])
            finally:
                view.release()
            unlink_region(self._library, name)
        return data

    def write_spill(self, frame: bytes) -> Region:
        """A region holding `frame`; the caller keeps it until the host has read it."""
        region = Region.create(self._library, len(frame), instance=self._instance)
        view = region.view()
        try:
            view[: len(frame)] = frame
        finally:
            view.release()
        return region

    def close(self) -> None:
        self._view = None  # type: ignore[assignment]
        self.requests = self.responses = None  # type: ignore[assignment]
        self._region.close()
