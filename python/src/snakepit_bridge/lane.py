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

import msgpack

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

# Request frames (host -> worker).
# [1, id, tool, args, encoding, session, deadline_ms, correlation, traceparent, stream,
#  queue_deadline_ms]: a call not started by queue_deadline_ms is dropped unrun (RESP_EXPIRED).
REQ_CALL = 1
REQ_CANCEL = 2  # [2, id]
REQ_CREDIT = 3  # [3, id, items]: the host can take `items` more stream items
# Response frames (worker -> host).
RESP_RESULT = 1  # [1, id, data, encoding, decode_ns, execute_ns, encode_ns]
RESP_ERROR = 2  # [2, id, serialized ExecuteResponse carrying the ErrorPayload]
RESP_ITEM = 3  # [3, id, data, encoding, sequence]
RESP_END = 4  # [4, id, items]
RESP_STREAM_ERROR = 5  # [5, id, serialized StreamChunk carrying the ErrorPayload]
RESP_EXPIRED = 6  # [6, id]: the call waited past its queue deadline and never ran
FRAME_SPILL = 9  # [9, region name, frame bytes]: the frame lies in a region of its own

_SLOT_HEADER = struct.Struct("<IIII")
_WORD = struct.Struct("<I")
_OK = STATUS_CODES["ok"]
OK_STATUS = _OK
_TIMED_OUT = STATUS_CODES["timed_out"]


class LaneProtocolError(Exception):
    """The lane's shared memory broke the protocol: bad header, stale or torn slot, bad frame.

    The lane is not trusted after this; the worker stops serving it and exits, and the host
    replaces the worker.
    """


def _packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True)


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
        length = _RESULT_HEADER.size + id_length + len(data)
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


# The two hot frames have a fixed binary layout instead of msgpack (a msgpack array's first
# byte is 0x90 or more, so the markers cannot be confused with one):
#   call   0x01, flags (1 stream), encoding, 0, f64 deadline_ms, f64 queue_deadline_ms,
#          u16 lengths of id, tool, session, correlation, traceparent, 0, u32 args length,
#          then those strings (UTF-8) and the args bytes
#   result 0x02, encoding, u16 id length, u32 data length, f64 decode/execute/encode ns,
#          then the id and the data
CALL_MARKER = 0x01
RESULT_MARKER = 0x02
_CALL_HEADER = struct.Struct("<BBBxddHHHHHxxI")
_RESULT_HEADER = struct.Struct("<BBHIddd")
# A slot's header and a result frame's header, packed in one go (`Ring.write_result`).
_SLOT_RESULT_HEADER = struct.Struct("<IIII" + _RESULT_HEADER.format[1:])


def encode_call(frame: list[Any]) -> bytes:
    """The binary form of a call frame `[1, id, tool, args, encoding, session, deadline,
    correlation, traceparent, stream, queue_deadline]` (the host's; here for tests)."""
    _, request_id, tool, args, encoding, session, deadline, correlation, traceparent = frame[:9]
    texts = [text.encode() for text in (request_id, tool, session, correlation, traceparent)]
    header = _CALL_HEADER.pack(
        CALL_MARKER, 1 if frame[9] else 0, encoding, deadline, frame[10],
        *(len(text) for text in texts), len(args),
    )
    return header + b"".join(texts) + bytes(args)


def _decode_call(data: bytes, index: int) -> list[Any]:
    size = _CALL_HEADER.size
    if len(data) < size:
        raise LaneProtocolError(f"frame {index}: a call frame of {len(data)} bytes is truncated")
    (
        marker, flags, encoding, deadline, queue_deadline,
        id_length, tool_length, session_length, correlation_length, traceparent_length,
        args_length,
    ) = _CALL_HEADER.unpack_from(data)
    # Unrolled (one offset per text): this runs for every call.
    tool_at = size + id_length
    session_at = tool_at + tool_length
    correlation_at = session_at + session_length
    traceparent_at = correlation_at + correlation_length
    args_at = traceparent_at + traceparent_length
    if args_at + args_length != len(data):
        raise LaneProtocolError(
            f"frame {index}: a call frame's lengths do not add up to its {len(data)} bytes"
        )
    try:
        request_id = data[size:tool_at].decode()
        tool = data[tool_at:session_at].decode()
        # An empty field (no session, say) is common: no slice, no decode.
        session = data[session_at:correlation_at].decode() if session_length else ""
        correlation = data[correlation_at:traceparent_at].decode() if correlation_length else ""
        traceparent = data[traceparent_at:args_at].decode() if traceparent_length else ""
    except UnicodeDecodeError as error:
        raise LaneProtocolError(f"frame {index}: a call frame's text is not UTF-8: {error}")
    return [
        marker, request_id, tool, data[args_at:], encoding, session, deadline, correlation,
        traceparent, bool(flags & 1), queue_deadline,
    ]


def encode_result(
    request_id: str, data: bytes, encoding: int, decode_ns: int, execute_ns: int, encode_ns: int
) -> bytes:
    """The binary form of a result frame."""
    identifier = request_id.encode()
    header = _RESULT_HEADER.pack(
        RESULT_MARKER, encoding, len(identifier), len(data), decode_ns, execute_ns, encode_ns
    )
    return header + identifier + data


def _decode_result(data: bytes, index: int) -> list[Any]:
    if len(data) < _RESULT_HEADER.size:
        raise LaneProtocolError(f"frame {index}: a result frame of {len(data)} bytes is truncated")
    _, encoding, id_length, data_length, decode_ns, execute_ns, encode_ns = (
        _RESULT_HEADER.unpack_from(data)
    )
    start = _RESULT_HEADER.size
    if start + id_length + data_length != len(data):
        raise LaneProtocolError(f"frame {index}: a result frame's lengths do not add up")
    request_id = data[start : start + id_length].decode("utf-8", "replace")
    payload = data[start + id_length :]
    timing = [int(decode_ns), int(execute_ns), int(encode_ns)]
    return [RESP_RESULT, request_id, payload, encoding, *timing]


def decode_frame(data: bytes, index: int) -> list[Any]:
    """A frame as a list `[kind, ...]` (binary call and result frames, or a msgpack array);
    LaneProtocolError for anything else."""
    if data and data[0] == CALL_MARKER:
        return _decode_call(data, index)
    if data and data[0] == RESULT_MARKER:
        return _decode_result(data, index)
    try:
        frame = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)
    except Exception as error:
        raise LaneProtocolError(f"frame {index} is not valid msgpack: {error}") from None
    if not isinstance(frame, list) or not frame or not isinstance(frame[0], int):
        raise LaneProtocolError(f"frame {index} is not a [kind, ...] array: {frame!r:.80}")
    return frame
