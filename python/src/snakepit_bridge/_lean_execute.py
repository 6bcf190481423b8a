"""The lean path of `Execute`: a plain sync tool (no `ctx`, not streaming) that may start at once.

Over gRPC most calls are of this kind, and the servicer's general path costs them tens of
microseconds in per-call objects (a `ToolContext`, `with` blocks, a cancel callback on the RPC)
that such a tool can never use: it cannot observe cancellation while it runs. This path keeps
everything the host can see: the call is registered for `Cancel` (found while it runs) and
`Ping` (in flight, served), it takes a tool slot, a passed deadline or a cancelled RPC never
starts it, its log records carry the call's ids, and the timing and error payload are the
general path's.

Anything unusual (arguments that do not fit, a full worker, a queued or expired call, a
duplicate request id) returns None: the general path then runs the call, or reports why not,
exactly as before.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from snakepit_bridge import codec, log_records
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge._server_support import encode_result, safe_payload

if TYPE_CHECKING:
    from snakepit_bridge.server import WorkerServicer
    from snakepit_bridge.tensor_call import CallRegions
    from snakepit_bridge.tensors import RegionBroker


class LeanCall:
    """Stands in the servicer's call table for a lean call: there is nothing to cancel."""

    __slots__ = ()

    def cancel(self, reason: str = "") -> bool:
        return False


LEAN_CALL = LeanCall()
_MSGPACK = worker_pb2.ENCODING_MSGPACK
_MSGPACK_ENCODINGS = (worker_pb2.ENCODING_MSGPACK, worker_pb2.ENCODING_UNSPECIFIED)
_EMPTY_MAP = b"\x80"
_MSGPACK_NIL = b"\xc0"


def no_arguments(data: bytes, encoding: int) -> bool:
    """Whether a call's argument bytes need no decoding: none at all, or msgpack's empty map
    (`encoding` resolved or not)."""
    return not data or (data == _EMPTY_MAP and encoding in _MSGPACK_ENCODINGS)


def encode_lean_result(
    broker: RegionBroker,
    request_id: str,
    result: Any,
    encoding: int,
    regions: CallRegions | None,
) -> bytes:
    """A lean call's result payload. `regions` None (a call without arguments): made only if
    the result needs them, and closed once it is encoded."""
    # None (a tool run for its effect) is one byte in msgpack: no encoder set up for it.
    if result is None and encoding == _MSGPACK:
        return _MSGPACK_NIL
    if regions is not None:
        return encode_result(result, encoding, regions)
    result_regions = broker.call(request_id)
    try:
        return encode_result(result, encoding, result_regions)
    finally:
        result_regions.close()


def execute_lean(
    servicer: WorkerServicer,
    request: worker_pb2.ExecuteRequest,
    context: Any,
    regions: CallRegions | None,
) -> worker_pb2.ExecuteResponse | None:
    """Runs the call on the lean path, or returns None for the general path to run it.

    `regions` None: the arguments need no decoding (`not_decoded`); regions are made only if
    the result needs them.
    """
    tool = servicer.lean_tool(request.tool)
    request_id = request.request_id
    deadline = request.deadline_unix_ms
    if tool is None or not request_id or (deadline > 0 and deadline <= time.time() * 1000):
        return None
    args = request.args
    started = time.perf_counter_ns()
    try:
        encoding = args.encoding
        if encoding != _MSGPACK:
            encoding = codec.resolve_encoding(encoding)
        data = args.data
        if no_arguments(data, encoding):
            arguments: Any = {}  # No arguments (the commonest payload): nothing to decode.
        elif regions is None:
            return None
        else:
            arguments = codec.decode(data, encoding, regions)
            if arguments is None:
                arguments = {}
            elif not isinstance(arguments, dict) or not all(
                isinstance(key, str) for key in arguments
            ):
                return None
        tool.bind(arguments)
    except Exception:  # noqa: BLE001 - the general path decodes again and reports it
        return None
    decoded = time.perf_counter_ns()
    if not servicer.admit_lean(request_id, request.session_id):
        return None
    if not context.is_active():  # Cancelled (or past its gRPC deadline) before it started.
        servicer.discharge_lean(request_id, ran=False)
        return None
    response = worker_pb2.ExecuteResponse(request_id=request_id)
    timing = response.timing
    timing.decode_ns = decoded - started
    metadata = request.metadata
    token = log_records.bind_call(metadata.correlation_id, metadata.traceparent)
    try:
        result = tool.function(**arguments)
    except BaseException as exc:  # noqa: BLE001 - every failure is reported as data
        response.error.CopyFrom(safe_payload(exc))
        return response
    finally:
        executed = time.perf_counter_ns()
        log_records.unbind_call(token)
        servicer.discharge_lean(request_id, ran=True)
        timing.execute_ns = executed - decoded
    del arguments  # Argument arrays must not keep their regions mapped while encoding.
    try:
        data = encode_lean_result(servicer.broker, request_id, result, encoding, regions)
    except BaseException as exc:  # noqa: BLE001
        response.error.CopyFrom(safe_payload(exc))
        return response
    timing.encode_ns = time.perf_counter_ns() - executed
    payload = response.result
    payload.encoding = encoding
    payload.data = data
    return response
