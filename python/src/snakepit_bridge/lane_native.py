"""The fast lane's lean loop in C (`_lane_native.c`), when it is built and allowed.

`lean_loop` returns a `LaneLoop` for a lane, or None: the extension was not built (no C
compiler when the package was installed), `SNAKEPIT_LANE_NATIVE=0` turns it off (to compare the
two paths, or to rule it out), or its layout constants disagree with lane.py's. Without it the
lane runs the same calls on its Python path (lane_lean.py); with it, lane_server.py hands each
batch of plain calls to `LaneLoop.serve` first.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

import msgpack

from snakepit_bridge import lane, log_records
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge._lean_execute import encode_lean_result
from snakepit_bridge.lane_frames import CALL_HEADER, RESULT_HEADER

if TYPE_CHECKING:
    from snakepit_bridge.lane_writer import ResponseWriter
    from snakepit_bridge.server import WorkerServicer

try:
    from snakepit_bridge import _lane_native
except ImportError:  # Built only where a C compiler was found at install time.
    _lane_native = None  # type: ignore[assignment]

ENV_SWITCH = "SNAKEPIT_LANE_NATIVE"


class _NotPlain(Exception):
    """A value the lean loop's plain codec leaves to the full one (an ext type, a default)."""


def _not_plain(*_args: Any) -> Any:
    raise _NotPlain


def available() -> bool:
    """Whether the extension is built and its layout is lane.py's."""
    return _lane_native is not None and layout_mismatches() == []


def layout_mismatches() -> list[str]:
    """The layout constants on which the extension and lane.py disagree (none: it may run)."""
    if _lane_native is None:
        return ["the extension is not built"]
    expected = {
        "HEADER_BYTES": lane.HEADER_BYTES,
        "SLOT_HEADER_BYTES": lane.SLOT_HEADER_BYTES,
        "OFF_REQ_TAIL": lane.OFF_REQ_TAIL,
        "OFF_REQ_STARTED": lane.OFF_REQ_STARTED,
        "OFF_RESP_HEAD": lane.OFF_RESP_HEAD,
        "OFF_HOST_PARKED": lane.OFF_HOST_PARKED,
        "OFF_RESP_TAIL": lane.OFF_RESP_TAIL,
        "CALL_MARKER": lane.CALL_MARKER,
        "RESULT_MARKER": lane.RESULT_MARKER,
        "CALL_HEADER_BYTES": CALL_HEADER.size,
        "RESULT_HEADER_BYTES": RESULT_HEADER.size,
    }
    actual = _lane_native.LAYOUT
    return [
        f"{name}: {actual.get(name)} != {value}"
        for name, value in expected.items()
        if actual.get(name) != value
    ]


def enabled() -> bool:
    """Whether lanes use the extension: built, matching, and not switched off."""
    return os.environ.get(ENV_SWITCH, "1") != "0" and available()


def lean_loop(
    servicer: WorkerServicer,
    lane_: lane.Lane,
    writer: ResponseWriter,
    doorbell_fd: int,
    send_error: Any,
    cancelled: dict[str, None],
) -> Any | None:
    """A `LaneLoop` serving `lane_`'s plain calls, or None (see the module doc)."""
    if not enabled():
        return None
    tools = {}
    for name, tool in servicer.lean_tools().items():
        try:
            tool.bind({})
            accepts_no_arguments = True
        except TypeError:
            accepts_no_arguments = False
        tools[name] = (tool.function, tool.bind, accepts_no_arguments)
    broker = servicer.broker
    msgpack_encoding = worker_pb2.ENCODING_MSGPACK
    return _lane_native.LaneLoop(
        view=lane_.payload_view,
        epoch=lane_.epoch,
        slot_bytes=lane_.slot_bytes,
        slot_count=lane_.slot_count,
        msgpack_encoding=msgpack_encoding,
        doorbell_fd=doorbell_fd,
        tools=tools,
        servicer=servicer,
        call_var=log_records.call_variable(),
        writer=writer,
        unpack=functools.partial(
            msgpack.unpackb, raw=False, strict_map_key=False, ext_hook=_not_plain
        ),
        pack=msgpack.Packer(use_bin_type=True, default=_not_plain).pack,
        encode_full=lambda request_id, result: encode_lean_result(
            broker, request_id, result, msgpack_encoding, None
        ),
        send_error=send_error,
        cancelled=cancelled,
    )
