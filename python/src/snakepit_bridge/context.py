"""`ToolContext`, what a tool that declares a `ctx` parameter receives, and per-session state.

Cancellation is cooperative: a Cancel RPC, the end of the host's RPC or the passing of the
call's deadline sets `ctx.cancelled`; a long tool checks it (or calls `ctx.check_cancelled()`)
between steps. Async tools are also interrupted at their next `await` by task cancellation.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from snakepit_bridge.errors import ToolCancelled, ToolDeadlineExceeded

if TYPE_CHECKING:
    import numpy

    from snakepit_bridge.tensor_call import CallRegions

SESSIONS_MAX = 1024

REASON_CANCELLED = "cancelled"
REASON_DEADLINE_EXCEEDED = "deadline_exceeded"


class SessionStore:
    """Per-session dicts that persist across calls with the same session id in this worker.

    Bounded: past SESSIONS_MAX sessions the least recently used one is forgotten, so a host that
    never reuses session ids cannot grow the worker without limit. A pluggable store (Redis, ...)
    replaces this class later.
    """

    def __init__(self, sessions_max: int = SESSIONS_MAX) -> None:
        if sessions_max < 1:
            raise ValueError(f"sessions_max must be at least 1, got {sessions_max}")
        self._sessions_max = sessions_max
        self._sessions: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> dict[str, Any]:
        """The session's state; an empty id gets a fresh dict that is not kept."""
        if not session_id:
            return {}
        with self._lock:
            state = self._sessions.get(session_id)
            if state is None:
                state = {}
                self._sessions[session_id] = state
                while len(self._sessions) > self._sessions_max:
                    self._sessions.popitem(last=False)
            else:
                self._sessions.move_to_end(session_id)
            return state

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


class ToolContext:
    """The call a tool is serving: identifiers, trace context, deadline, cancellation, session."""

    def __init__(
        self,
        *,
        request_id: str,
        tool: str,
        session_id: str = "",
        correlation_id: str = "",
        traceparent: str = "",
        tracestate: str = "",
        deadline_unix_ms: int = 0,
        worker_id: str = "",
        session: dict[str, Any] | None = None,
        regions: CallRegions | None = None,
    ) -> None:
        self.request_id = request_id
        self.tool = tool
        self.session_id = session_id
        self.correlation_id = correlation_id
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.deadline_unix_ms = deadline_unix_ms
        self.worker_id = worker_id
        self.session: dict[str, Any] = session if session is not None else {}
        # The call's shared-memory regions (tensor arguments and results); None outside a call.
        self.regions = regions
        # Most calls are never cancelled nor waited on: the Event is made only when a tool waits
        # (wait_cancelled), which keeps a call's set-up cheap.
        self._cancelled = False
        self._cancel_event: threading.Event | None = None
        self._reason: str | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        """True once the call was cancelled or its deadline passed."""
        if self._cancelled:
            return True
        if self.deadline_unix_ms > 0 and self.deadline_passed():
            self.cancel(REASON_DEADLINE_EXCEEDED)
            return True
        return False

    @property
    def cancel_reason(self) -> str | None:
        """Why the call stopped ("cancelled" or "deadline_exceeded"); None while it may run."""
        return self._reason if self.cancelled else None

    def check_cancelled(self) -> None:
        """Raises ToolCancelled (ToolDeadlineExceeded for a deadline) once the call is over."""
        if not self.cancelled:
            return
        if self._reason == REASON_DEADLINE_EXCEEDED:
            raise ToolDeadlineExceeded(
                f"Tool {self.tool!r} (request {self.request_id}) passed its deadline"
            )
        raise ToolCancelled(f"Tool {self.tool!r} (request {self.request_id}) was cancelled")

    def wait_cancelled(self, timeout_s: float) -> bool:
        """Blocks up to `timeout_s` (bounded by the deadline); returns True when cancelled."""
        remaining_s = self.seconds_until_deadline()
        if remaining_s is not None:
            timeout_s = min(timeout_s, remaining_s)
        with self._lock:
            if self._cancelled:
                return True
            if self._cancel_event is None:
                self._cancel_event = threading.Event()
            event = self._cancel_event
        event.wait(max(0.0, timeout_s))
        return self.cancelled

    def seconds_until_deadline(self) -> float | None:
        if self.deadline_unix_ms <= 0:
            return None
        return self.deadline_unix_ms / 1000.0 - time.time()

    def deadline_passed(self) -> bool:
        return self.deadline_unix_ms > 0 and time.time() * 1000.0 >= self.deadline_unix_ms

    def cancel(self, reason: str = REASON_CANCELLED) -> bool:
        """Marks the call cancelled and runs the cancel callbacks once; False if already done."""
        with self._lock:
            if self._cancelled:
                return False
            self._reason = reason
            self._cancelled = True
            if self._cancel_event is not None:
                self._cancel_event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _run_callback(callback)
        return True

    def add_cancel_callback(self, callback: Callable[[], None]) -> None:
        """Runs `callback` on cancellation (at once when the call is already cancelled)."""
        with self._lock:
            if not self._cancelled:
                self._callbacks.append(callback)
                return
        _run_callback(callback)

    def remove_cancel_callback(self, callback: Callable[[], None]) -> None:
        """Forgets a callback whose work finished, so long streams do not accumulate them."""
        with self._lock:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

    def alloc_tensor(self, shape: Any, dtype: Any) -> numpy.ndarray:
        """A zeroed C-contiguous array that this call can return to the host without a copy.

        It lives in a new shared-memory region (freed once the host adopted the result, or
        after the call when it is not returned). When zero-copy is disabled for this worker
        it is an ordinary numpy array, and a result holding it travels inline.

        `dtype` is a numpy dtype or name among int8..int64, uint8..uint64, float16, float32,
        float64, bool, or "bfloat16" (held as uint16 storage, returned as bfloat16). Raises
        `ValueError` for other dtypes and for shapes that are not at most 8 extents >= 0.

        Example::

            def scale(values, factor, ctx):
                out = ctx.alloc_tensor(values.shape, values.dtype)
                numpy.multiply(values, factor, out=out)
                return out
        """
        if self.regions is not None:
            return self.regions.alloc_tensor(shape, dtype)
        from snakepit_bridge._tensor_support import allocate_plain

        return allocate_plain(shape, dtype)

    def __repr__(self) -> str:
        return (
            f"ToolContext(request_id={self.request_id!r}, tool={self.tool!r}, "
            f"session_id={self.session_id!r}, cancelled={self.cancelled})"
        )


def _run_callback(callback: Callable[[], None]) -> None:
    # A failing callback must neither skip the others nor surface in the Cancel RPC.
    try:
        callback()
    except Exception as error:  # noqa: BLE001 - reported, never propagated
        print(f"snakepit: cancel callback failed: {error!r}", file=sys.stderr)
