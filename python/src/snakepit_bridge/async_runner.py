"""`AsyncRunner`: the one event loop, on its own thread, where a worker's async tools run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any


class AsyncRunner:
    """One event loop on one daemon thread, where every async tool of the worker runs."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure_loop())

    def stop(self) -> None:
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        # Started on first use: a worker whose tools are all synchronous never runs the thread.
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="snakepit-async-tools", daemon=True
                ).start()
                self._loop = loop
            return self._loop
