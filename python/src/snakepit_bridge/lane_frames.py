"""The fast lane's frames: what a ring slot carries (see lane.py for the rings themselves).

Calls and results, the two hot frames, have a fixed binary layout; every other frame (cancel,
credit, stream items, errors, spills) is a msgpack array `[kind, ...]`. Kept in step with
src/bridge/lane/ring.ts and _msgpack_frames.ts.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

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


class LaneProtocolError(Exception):
    """The lane's shared memory broke the protocol: bad header, stale or torn slot, bad frame.

    The lane is not trusted after this; the worker stops serving it and exits, and the host
    replaces the worker.
    """


# The two hot frames have a fixed binary layout instead of msgpack (a msgpack array's first
# byte is 0x90 or more, so the markers cannot be confused with one):
#   call   0x01, flags (1 stream), encoding, 0, f64 deadline_ms, f64 queue_deadline_ms,
#          u16 lengths of id, tool, session, correlation, traceparent, 0, u32 args length,
#          then those strings (UTF-8) and the args bytes
#   result 0x02, encoding, u16 id length, u32 data length, f64 decode/execute/encode ns,
#          then the id and the data
CALL_MARKER = 0x01
RESULT_MARKER = 0x02
CALL_HEADER = struct.Struct("<BBBxddHHHHHxxI")
RESULT_HEADER = struct.Struct("<BBHIddd")


def encode_call(frame: list[Any]) -> bytes:
    """The binary form of a call frame `[1, id, tool, args, encoding, session, deadline,
    correlation, traceparent, stream, queue_deadline]` (the host's; here for tests)."""
    _, request_id, tool, args, encoding, session, deadline, correlation, traceparent = frame[:9]
    texts = [text.encode() for text in (request_id, tool, session, correlation, traceparent)]
    header = CALL_HEADER.pack(
        CALL_MARKER, 1 if frame[9] else 0, encoding, deadline, frame[10],
        *(len(text) for text in texts), len(args),
    )
    return header + b"".join(texts) + bytes(args)


def _decode_call(data: bytes, index: int) -> list[Any]:
    size = CALL_HEADER.size
    if len(data) < size:
        raise LaneProtocolError(f"frame {index}: a call frame of {len(data)} bytes is truncated")
    (
        marker, flags, encoding, deadline, queue_deadline,
        id_length, tool_length, session_length, correlation_length, traceparent_length,
        args_length,
    ) = CALL_HEADER.unpack_from(data)
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
    header = RESULT_HEADER.pack(
        RESULT_MARKER, encoding, len(identifier), len(data), decode_ns, execute_ns, encode_ns
    )
    return header + identifier + data


def _decode_result(data: bytes, index: int) -> list[Any]:
    if len(data) < RESULT_HEADER.size:
        raise LaneProtocolError(f"frame {index}: a result frame of {len(data)} bytes is truncated")
    _, encoding, id_length, data_length, decode_ns, execute_ns, encode_ns = (
        RESULT_HEADER.unpack_from(data)
    )
    start = RESULT_HEADER.size
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
