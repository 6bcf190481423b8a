"""Helpers of the servicer: encoding results, error payloads, tool specs, RSS, a call's
arguments, the tool slots, and the `with` blocks of an admitted call and of a tool slot."""

from __future__ import annotations

import logging
import os
import queue
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

from snakepit_bridge import codec
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.adapter import Tool
from snakepit_bridge.errors import InvalidArgumentsError, UnknownToolError, error_payload

if TYPE_CHECKING:
    from snakepit_bridge.context import ToolContext
    from snakepit_bridge.tensor_call import CallRegions

logger = logging.getLogger("snakepit_bridge.server")
# A call waiting for a tool slot checks this often whether it was cancelled.
SLOT_POLL_S = 0.05


def native_abi_version() -> int:
    """The native library's ABI version, or 0 when it is absent or fails to load."""
    try:
        from snakepit_bridge import native  # Loaded lazily: the worker runs without it.

        return int(native.abi_version_or_zero())
    except Exception as error:  # noqa: BLE001 - any native failure means "no native library"
        logger.debug("native library unavailable: %r", error)
        return 0


def encode_result(value: Any, encoding: int, regions: CallRegions | None = None) -> bytes:
    try:
        return codec.encode(value, encoding, regions)
    except Exception as error:
        # The traceback points into the codec, not at the tool: the message says what to fix.
        raise error.with_traceback(None) from None


def safe_payload(exc: BaseException) -> worker_pb2.ErrorPayload:
    try:
        return error_payload(exc)
    except Exception as failure:  # noqa: BLE001 - the error path itself must not fail
        logger.exception("building an error payload failed")
        return worker_pb2.ErrorPayload(
            kind="python",
            python_type=type(exc).__qualname__,
            message=f"<error payload failed: {type(failure).__qualname__}>",
        )


def tool_spec(tool: Tool) -> worker_pb2.ToolSpec:
    return worker_pb2.ToolSpec(
        name=tool.name,
        doc=tool.doc,
        signature=tool.signature_text,
        parameters=[
            worker_pb2.ToolParameter(
                name=p.name,
                kind=p.kind,
                annotation=p.annotation,
                required=p.required,
                default_repr=p.default_repr,
            )
            for p in tool.parameters
        ],
        returns=tool.returns,
        streaming=tool.streaming,
        is_async=tool.is_async,
    )


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # Without /proc (macOS), the peak RSS is the best the platform offers; Linux reports
        # it in KiB, macOS in bytes.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class Admission:
    """`with` block of an admitted call: yields its context, unregisters it on exit.

    A class rather than @contextmanager: the generator machinery costs microseconds per call.
    """

    __slots__ = ("_servicer", "_ctx")

    def __init__(self, servicer: Any, ctx: ToolContext) -> None:
        self._servicer = servicer
        self._ctx = ctx

    def __enter__(self) -> ToolContext:
        return self._ctx

    def __exit__(self, *_exc: object) -> None:
        self._servicer._discharge(self._ctx.request_id)


class ToolSlots:
    """One token per tool allowed to run at once (a lock, in effect, for a non-thread-safe
    adapter). Tokens in a C-level queue: threading.Semaphore is pure Python and costs
    microseconds per call on the hot path."""

    __slots__ = ("_tokens",)

    def __init__(self, count: int) -> None:
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(count):
            self._tokens.put(None)

    def take(self, ctx: ToolContext) -> None:
        """Waits for a token; a call cancelled while it waits never starts. `give` it back."""
        tokens = self._tokens
        while True:
            try:
                tokens.get(timeout=SLOT_POLL_S)
                break
            except queue.Empty:
                ctx.check_cancelled()
        try:
            ctx.check_cancelled()
        except BaseException:
            tokens.put(None)
            raise

    def try_take(self) -> bool:
        """Takes a token when one is free at once."""
        try:
            self._tokens.get_nowait()
        except queue.Empty:
            return False
        return True

    def give(self) -> None:
        self._tokens.put(None)

    def turn(self, ctx: ToolContext) -> ToolTurn:
        """`take`, as a `with` block that gives the token back."""
        self.take(ctx)
        return ToolTurn(self)


class ToolTurn:
    """`with` block holding one tool slot, given back on exit."""

    __slots__ = ("_slots",)

    def __init__(self, slots: ToolSlots) -> None:
        self._slots = slots

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        self._slots.give()


def prepare_arguments(
    tools: dict[str, Tool],
    request: worker_pb2.ExecuteRequest,
    ctx: ToolContext,
    timing: worker_pb2.Timing,
) -> tuple[Tool, dict[str, Any], int]:
    """The tool, its decoded keyword arguments (`ctx` added when it takes one) and the
    encoding; UnknownToolError or InvalidArgumentsError when they do not fit."""
    tool = tools.get(request.tool)
    if tool is None:
        raise UnknownToolError(request.tool, tools)
    ctx.check_cancelled()
    args = request.args
    encoding = codec.resolve_encoding(args.encoding)
    started = time.perf_counter_ns()
    data = args.data
    decoded = codec.decode(data, encoding, ctx.regions) if data else None
    timing.decode_ns = time.perf_counter_ns() - started
    arguments = {} if decoded is None else decoded
    # An empty map (a call without arguments) skips the key check's generator.
    if not isinstance(arguments, dict) or (
        arguments and not all(isinstance(k, str) for k in arguments)
    ):
        raise InvalidArgumentsError(
            f"Arguments of tool {tool.name!r} must be a map of parameter name to value, "
            f"got {type(arguments).__name__}"
        )
    try:
        tool.bind(arguments)
    except TypeError as error:
        raise InvalidArgumentsError(
            f"Cannot call tool {tool.name!r}{tool.signature_text}: {error}"
        ) from None
    if tool.accepts_context:
        arguments = {**arguments, "ctx": ctx}
    return tool, arguments, encoding
