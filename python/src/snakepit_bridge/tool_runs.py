"""Running a tool: awaiting an async tool on the worker's event loop, and iterating a
streaming tool (sync or async) until it ends or the call is cancelled."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Iterator
from typing import Any, Final

from snakepit_bridge.adapter import Tool
from snakepit_bridge.async_runner import AsyncRunner
from snakepit_bridge.context import ToolContext
from snakepit_bridge.errors import ToolCancelled

ASYNC_CLOSE_TIMEOUT_S: Final = 1.0
_CANCELLED_ERRORS = (asyncio.CancelledError, concurrent.futures.CancelledError)


class ToolRuns:
    """Calls tools for one servicer; async steps run on its `AsyncRunner`."""

    def __init__(self, runner: AsyncRunner) -> None:
        self._runner = runner

    def invoke(self, tool: Tool, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        if tool.is_async and not tool.streaming:
            return self._await(self._runner.submit(tool.function(**arguments)), ctx)
        return tool.function(**arguments)

    def items(self, tool: Tool, arguments: dict[str, Any], ctx: ToolContext) -> Iterator[Any]:
        """A tool's results as a stream: a generator's items, or a plain tool's one result.

        Stops (closing the tool's generator) once the call is cancelled.
        """
        produced = self.invoke(tool, arguments, ctx)
        if not tool.streaming:
            yield produced
        elif tool.is_async:
            yield from self._iterate_async(produced, ctx)
        else:
            yield from self._iterate_sync(produced, ctx)

    def _iterate_sync(self, produced: Any, ctx: ToolContext) -> Iterator[Any]:
        try:
            while True:
                ctx.check_cancelled()
                try:
                    item = next(produced)
                except StopIteration:
                    return
                yield item
        finally:
            produced.close()

    def _iterate_async(self, produced: Any, ctx: ToolContext) -> Iterator[Any]:
        try:
            while True:
                ctx.check_cancelled()
                finished, item = self._await(self._runner.submit(_next_item(produced)), ctx)
                if finished:
                    return
                yield item
        finally:
            closing = self._runner.submit(produced.aclose())
            with contextlib.suppress(BaseException):
                closing.result(timeout=ASYNC_CLOSE_TIMEOUT_S)

    def _await(self, future: concurrent.futures.Future[Any], ctx: ToolContext) -> Any:
        """Waits for an async step; cancelling the call cancels its task."""
        ctx.add_cancel_callback(future.cancel)
        try:
            while True:
                try:
                    return future.result(timeout=ctx.seconds_until_deadline())
                except concurrent.futures.TimeoutError:
                    # Reading `cancelled` past the deadline cancels the call, and so the future.
                    if ctx.cancelled:
                        future.cancel()
                except _CANCELLED_ERRORS:
                    ctx.check_cancelled()
                    raise ToolCancelled(f"Tool {ctx.tool!r} cancelled its own task") from None
        finally:
            ctx.remove_cancel_callback(future.cancel)


async def _next_item(produced: Any) -> tuple[bool, Any]:
    # StopAsyncIteration must not cross the thread boundary as an exception: it is the normal
    # end of the stream.
    try:
        return False, await produced.__anext__()
    except StopAsyncIteration:
        return True, None
