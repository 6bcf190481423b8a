"""What a fast-lane call needs of the gRPC machinery it shares with the servicer: a stand-in
for the RPC context (cancel callbacks, liveness, a stream's credit) and the `ExecuteRequest` a
call frame stands for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from snakepit_bridge._generated import worker_pb2

logger = logging.getLogger("snakepit_bridge.lane")


class RpcContext:
    """What the servicer needs of a gRPC context (add_callback, is_active), for a lane call.

    Also the stream's credit account: a streaming call may send an item only with credit.
    """

    __slots__ = ("_callbacks", "_active", "_credit", "_condition")

    def __init__(self, credit: int = 0) -> None:
        self._callbacks: list[Callable[[], Any]] = []
        self._active = True
        self._credit = credit
        self._condition = threading.Condition()

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        with self._condition:
            if not self._active:
                return False
            self._callbacks.append(callback)
            return True

    def is_active(self) -> bool:
        return self._active

    def cancel(self) -> None:
        with self._condition:
            if not self._active:
                return
            self._active = False
            callbacks, self._callbacks = self._callbacks, []
            self._condition.notify_all()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - one failing callback must not stop the rest
                logger.exception("lane cancel callback failed")

    def grant(self, items: int) -> None:
        with self._condition:
            self._credit += items
            self._condition.notify_all()

    def take_credit(self) -> bool:
        """Waits for one item's credit; False when the call was cancelled meanwhile."""
        with self._condition:
            while self._active and self._credit <= 0:
                self._condition.wait()
            if not self._active:
                return False
            self._credit -= 1
            return True


def execute_request(frame: list[Any]) -> worker_pb2.ExecuteRequest:
    """The servicer's request for a call frame (the servicer path of a lane call)."""
    _, request_id, tool, args, encoding, session, deadline, correlation, traceparent = frame[:9]
    return worker_pb2.ExecuteRequest(
        request_id=request_id,
        tool=tool,
        args=worker_pb2.Payload(encoding=encoding, data=args),
        session_id=session,
        deadline_unix_ms=int(deadline),
        metadata=worker_pb2.CallMetadata(correlation_id=correlation, traceparent=traceparent),
    )
