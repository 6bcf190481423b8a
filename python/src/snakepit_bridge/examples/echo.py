"""`EchoAdapter`: tools that return what they are given or misbehave on request.

Thread-safe, so its calls may run concurrently. The process-level tools (`spawn_child`,
`crash`, `kill_self`) let the host test supervision: orphans, exit codes, signals.
"""

from __future__ import annotations

import time
import asyncio
import os
import signal as signals
import subprocess
from collections.abc import AsyncIterator
from typing import Any

from snakepit_bridge.adapter import Adapter, tool
from snakepit_bridge.context import ToolContext


class EchoAdapter(Adapter):
    thread_safe = True

    def __init__(self) -> None:
        # Kept so the Popen objects are not collected while their processes run.
        self._children: list[subprocess.Popen[bytes]] = []
        self._records: list[str] = []

    @tool
    def noop(self) -> None:
        """Does nothing: measures the bare cost of a call."""
        return None

    @tool
    def echo(self, value: Any) -> Any:
        """Returns `value` unchanged (round-trip tests)."""
        return value

    @tool
    async def echo_async(self, value: Any) -> Any:
        """Returns `value` unchanged, from a coroutine on the worker's event loop."""
        await asyncio.sleep(0)
        return value

    @tool
    async def fail_async(self, message: str) -> None:
        """Raises ValueError(message) from a coroutine (async error-path tests)."""
        await asyncio.sleep(0)
        raise ValueError(message)

    @tool
    async def count_async(self, n: int, delay_ms: float = 0) -> AsyncIterator[int]:
        """Streams 0..n-1 from an async generator, waiting delay_ms before each item."""
        for index in range(n):
            await asyncio.sleep(delay_ms / 1000.0)
            yield index

    @tool
    async def sleep_async(self, seconds: float) -> float:
        """Sleeps on the event loop; a cancelled call cancels the sleep at once."""
        await asyncio.sleep(seconds)
        return seconds

    @tool
    def shout(self, text: str) -> None:
        """Prints text to stdout, which the worker routes to stderr (stdout is the protocol's)."""
        print(text, flush=True)

    @tool
    def whoami(self, ctx: ToolContext) -> dict[str, Any]:
        """The worker and call identity: pid, worker_id, session_id, correlation_id, traceparent."""
        return {
            "pid": os.getpid(),
            "worker_id": ctx.worker_id,
            "session_id": ctx.session_id,
            "correlation_id": ctx.correlation_id,
            "traceparent": ctx.traceparent,
        }

    @tool
    def remember(self, key: str, value: Any, ctx: ToolContext) -> Any:
        """Stores value under key in the session and returns the previous value (or None)."""
        previous = ctx.session.get(key)
        ctx.session[key] = value
        return previous

    @tool
    def spawn_child(self, seconds: float) -> int:
        """Starts `sleep seconds` as a child process and returns its pid (orphan tests)."""
        child = subprocess.Popen(["sleep", str(seconds)], stdin=subprocess.DEVNULL)
        self._children.append(child)
        return child.pid

    @tool
    def crash(self, code: int) -> None:
        """Exits the worker at once with exit code `code`, skipping all cleanup."""
        os._exit(code)

    @tool
    def kill_self(self, signal: int) -> None:
        """Sends signal number `signal` to the worker itself (9 is SIGKILL, 11 SIGSEGV)."""
        os.kill(os.getpid(), signals.Signals(signal))

    @tool
    def block(self, seconds: float) -> list[float]:
        """Sleeps without ever checking for cancellation; returns [start, end] wall-clock seconds.

        For tests: calls that overlap in time prove concurrency, and a call that ignores
        cancellation exercises the host's grace-then-kill rule.
        """
        started = time.time()
        time.sleep(seconds)
        return [started, time.time()]

    @tool
    def record(self, label: str) -> int:
        """Appends label to this worker's call log (to prove whether a call ran); returns its length."""
        self._records.append(label)
        return len(self._records)

    @tool
    def records(self) -> list[str]:
        """This worker's call log, oldest first."""
        return list(self._records)

    @tool
    def wait_cancellable(self, label: str, seconds: float, ctx: ToolContext) -> str:
        """Waits up to `seconds`, logging `label:cancelled` if the call is cancelled first.

        Proves that a host's timeout or abort reaches the tool as ctx.cancelled.
        """
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ctx.cancelled:
                self._records.append(f"{label}:cancelled")
                ctx.check_cancelled()
            time.sleep(0.005)
        self._records.append(f"{label}:done")
        return "done"
