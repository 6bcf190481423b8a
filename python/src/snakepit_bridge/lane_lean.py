"""The fast lane's lean path: a plain sync tool (no `ctx`, not streaming) run on the reader
thread with no per-call objects but its `CallRegions`, and none of those for a call without
arguments. Everything else goes through the servicer (lane_server.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgpack

from snakepit_bridge import codec, log_records
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge._lean_execute import encode_lean_result, no_arguments
from snakepit_bridge._server_support import safe_payload
from snakepit_bridge.lane_frames import RESP_ERROR

if TYPE_CHECKING:
    from snakepit_bridge.lane_writer import ResponseWriter
    from snakepit_bridge.server import WorkerServicer
    from snakepit_bridge.tensor_call import CallRegions

_MSGPACK = worker_pb2.ENCODING_MSGPACK


class LeanCalls:
    """Runs lean calls for one lane (only on its reader thread: the servicer's lane counters
    are unlocked)."""

    def __init__(self, servicer: WorkerServicer, writer: ResponseWriter) -> None:
        self._servicer = servicer
        self._writer = writer
        self._packb = msgpack.Packer(use_bin_type=True).pack

    def run(self, tool: Any, frame: list[Any]) -> bool:
        """A plain sync tool without ctx: decode, bind, run, encode, reply, with no per-call
        objects but its `CallRegions`, and none of those for a call without arguments.

        False (nothing sent: the caller takes the servicer's path, which reports the error
        properly) when the arguments do not decode to a fitting map.
        """
        args, encoding = frame[3], frame[4]
        if encoding != _MSGPACK:
            try:
                encoding = codec.resolve_encoding(encoding)
            except Exception:  # noqa: BLE001 - reported by the servicer's path
                return False
        broker = self._servicer.broker
        regions = None if no_arguments(args, encoding) else broker.call(frame[1])
        try:
            reply = self._reply(tool, frame, encoding, regions)
        finally:
            # After the call's frame is gone, so the argument regions usually close at once;
            # before the reply goes out, so the host never sees a reply to a call whose
            # argument regions the worker still holds.
            if regions is not None:
                regions.close()
            else:
                broker.sweep_if_due()
        if type(reply) is tuple:
            self._writer.send_result(*reply)
        elif reply is None:
            return False
        else:
            self._writer.send(reply)  # An error frame.
        return True

    def send_error(self, request_id: str, error: BaseException) -> None:
        """Sends the error frame of a call whose tool raised (the C lean loop's path too)."""
        self._writer.send(self._error_reply(request_id, error))

    def _reply(
        self, tool: Any, frame: list[Any], encoding: int, regions: CallRegions | None
    ) -> bytes | tuple[str, bytes, int, int, int, int] | None:
        """The reply: an error frame, the fields of a result frame (`send_result`'s arguments),
        or None when the arguments do not fit (the servicer's path runs the call)."""
        request_id, args = frame[1], frame[3]
        started = time.perf_counter_ns()
        if regions is None:
            arguments: Any = {}
        else:
            try:
                arguments = codec.decode(args, encoding, regions)
                if not isinstance(arguments, dict):
                    return None
                for key in arguments:
                    if not isinstance(key, str):
                        return None
            except Exception:  # noqa: BLE001 - reported by the servicer's path
                return None
        try:
            tool.bind(arguments)
        except Exception:  # noqa: BLE001 - reported by the servicer's path
            return None
        decoded = time.perf_counter_ns()
        servicer = self._servicer
        servicer.lane_call = request_id
        token = log_records.bind_call(frame[7], frame[8])
        try:
            result = tool.function(**arguments)
        except BaseException as error:  # noqa: BLE001 - every failure is reported as data
            return self._error_reply(request_id, error)
        finally:
            log_records.unbind_call(token)
            servicer.lane_call_done()
        executed = time.perf_counter_ns()
        del arguments  # Argument arrays must not keep their regions mapped while encoding.
        try:
            data = encode_lean_result(servicer.broker, request_id, result, encoding, regions)
        except BaseException as error:  # noqa: BLE001
            return self._error_reply(request_id, error)
        encoded = time.perf_counter_ns()
        return request_id, data, encoding, decoded - started, executed - decoded, encoded - executed

    def _error_reply(self, request_id: str, error: BaseException) -> bytes:
        response = worker_pb2.ExecuteResponse(request_id=request_id, error=safe_payload(error))
        return self._packb([RESP_ERROR, request_id, response.SerializeToString()])
