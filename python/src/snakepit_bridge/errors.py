"""Exceptions the bridge raises and their translation into the wire's `ErrorPayload`.

A Python failure crosses to TypeScript as data, never as a bare string: its classification
(`kind`), type, module, message, traceback frames, cause chain and notes. The host builds its
typed error classes from `kind`, so `kind` is decided here from exception classes only, never
from message text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import traceback
from collections.abc import Iterable
from types import TracebackType

from snakepit_bridge._generated import worker_pb2

MESSAGE_BYTES_MAX = 8 * 1024
FRAMES_MAX = 64
CAUSES_MAX = 8
NOTES_MAX = 16
SOURCE_CHARS_MAX = 512

KIND_PYTHON = "python"
KIND_UNKNOWN_TOOL = "unknown_tool"
KIND_INVALID_ARGUMENTS = "invalid_arguments"
KIND_SERIALIZATION = "serialization"
KIND_CANCELLED = "cancelled"
KIND_DEADLINE_EXCEEDED = "deadline_exceeded"
KIND_IMPORT = "import"
KIND_WORKER_BUSY = "worker_busy"

# Frames in these directories, before the first frame of the tool itself, are dispatch: the
# bridge's own modules (its subpackages, like examples/, are user code) and the futures that
# carry an async tool's exception back to the RPC thread. They would bury the user's frames.
_DISPATCH_DIRECTORIES = frozenset(
    os.path.dirname(os.path.abspath(module_file))
    for module_file in (__file__, concurrent.futures.__file__, asyncio.__file__)
)


class SnakepitBridgeError(Exception):
    """Base of the bridge's own exceptions; `suggestion` travels in ErrorPayload.suggestion."""

    def __init__(self, message: str, *, suggestion: str = "") -> None:
        super().__init__(message)
        self.suggestion = suggestion


class SerializationError(SnakepitBridgeError):
    """A value cannot be encoded (or decoded) faithfully in the requested encoding."""


class ToolCancelled(SnakepitBridgeError):
    """Raised inside a tool (by `ToolContext.check_cancelled`) after the call was cancelled."""


class ToolDeadlineExceeded(ToolCancelled):
    """A `ToolCancelled` whose cause is the call's deadline passing, not a Cancel request."""


class UnknownToolError(SnakepitBridgeError):
    """The request named a tool the adapter does not have."""

    def __init__(self, tool: str, available: Iterable[str]) -> None:
        names = sorted(available)
        listing = ", ".join(names) if names else "(none)"
        super().__init__(
            f"Unknown tool {tool!r}; available tools: {listing}",
            suggestion=f"Call one of: {listing}",
        )
        self.tool = tool
        self.available = names


class InvalidArgumentsError(SnakepitBridgeError, TypeError):
    """The request's arguments do not bind to the tool's signature."""


class WorkerBusyError(SnakepitBridgeError):
    """The worker already holds as many calls as it admits; the host should retry elsewhere."""


def classify(exc: BaseException) -> str:
    """Returns the wire `kind` for an exception, from its class alone.

    This is the seam where later classifications (shape and dtype mismatches, devices, out of
    memory) plug in: add a branch here, before the generic fallbacks, and a details builder in
    `_details_of`.
    """
    if isinstance(exc, ToolDeadlineExceeded):
        return KIND_DEADLINE_EXCEEDED
    if isinstance(exc, ToolCancelled):
        return KIND_CANCELLED
    if isinstance(exc, SerializationError):
        return KIND_SERIALIZATION
    if isinstance(exc, UnknownToolError):
        return KIND_UNKNOWN_TOOL
    if isinstance(exc, InvalidArgumentsError):
        return KIND_INVALID_ARGUMENTS
    if isinstance(exc, WorkerBusyError):
        return KIND_WORKER_BUSY
    if isinstance(exc, ImportError):
        return KIND_IMPORT
    return KIND_PYTHON


def error_payload(exc: BaseException, kind: str | None = None) -> worker_pb2.ErrorPayload:
    """Builds the structured wire form of `exc`; `kind` overrides the class-based choice."""
    resolved_kind = kind if kind is not None else classify(exc)
    suggestion = getattr(exc, "suggestion", "")
    return worker_pb2.ErrorPayload(
        kind=resolved_kind,
        python_type=type(exc).__qualname__,
        python_module=type(exc).__module__,
        message=_message_of(exc),
        # The bridge's own refusals (unknown tool, bad arguments, ...) raised by the dispatch
        # code have no frames worth showing; a bug elsewhere in the bridge keeps its frames.
        frames=frames_of(
            exc.__traceback__, keep_dispatch_only=not isinstance(exc, SnakepitBridgeError)
        ),
        causes=_causes_of(exc),
        notes=_notes_of(exc),
        suggestion=suggestion if isinstance(suggestion, str) else "",
        retryable=resolved_kind == KIND_WORKER_BUSY,
        details=_details_of(exc, resolved_kind),
    )


def frames_of(
    tb: TracebackType | None, *, keep_dispatch_only: bool = True
) -> list[worker_pb2.TracebackFrame]:
    """Traceback frames, innermost last, at most FRAMES_MAX, without the leading dispatch frames.

    Frames after the first user frame all stay, even the bridge's (ctx.check_cancelled) or
    asyncio's: there they say what the tool was doing. When every frame is dispatch (a bug in
    the bridge itself), all are kept unless `keep_dispatch_only` is False: an empty traceback
    would hide the frames that matter.
    """
    if tb is None:
        return []
    summaries = list(traceback.extract_tb(tb))
    first_user = next(
        (i for i, s in enumerate(summaries) if not _is_dispatch_file(s.filename)), len(summaries)
    )
    chosen = summaries[first_user:] or (summaries if keep_dispatch_only else [])
    return [
        worker_pb2.TracebackFrame(
            file=summary.filename,
            line=summary.lineno or 0,
            function=summary.name,
            source=(summary.line or "").strip()[:SOURCE_CHARS_MAX],
        )
        for summary in chosen[-FRAMES_MAX:]
    ]


def truncate_utf8(text: str, limit_bytes: int) -> str:
    """Cuts `text` to at most `limit_bytes` of UTF-8, marking the cut, never splitting a char."""
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= limit_bytes:
        return text
    marker = f"... [truncated {len(encoded) - limit_bytes} bytes]"
    head = encoded[: max(0, limit_bytes - len(marker))].decode("utf-8", errors="ignore")
    return head + marker


def _is_dispatch_file(filename: str) -> bool:
    return os.path.dirname(os.path.abspath(filename)) in _DISPATCH_DIRECTORIES


def _message_of(exc: BaseException) -> str:
    # str() of an exception runs user code (__str__) and may itself fail; the payload must still
    # be built, so fall back to the type name rather than let the failure escape.
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - any failure of user __str__ degrades, never propagates
        text = f"<unprintable {type(exc).__qualname__}>"
    # Surrogates cannot travel in a protobuf string; replace rather than fail.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return truncate_utf8(text, MESSAGE_BYTES_MAX)


def _causes_of(exc: BaseException) -> list[worker_pb2.ErrorCause]:
    """The `__cause__` / `__context__` chain, nearest first, bounded and cycle-safe."""
    causes: list[worker_pb2.ErrorCause] = []
    seen = {id(exc)}
    current: BaseException = exc
    while len(causes) < CAUSES_MAX:
        if current.__cause__ is not None:
            relation, following = "cause", current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            relation, following = "context", current.__context__
        else:
            break
        if id(following) in seen:
            break
        seen.add(id(following))
        causes.append(
            worker_pb2.ErrorCause(
                relation=relation,
                python_type=type(following).__qualname__,
                python_module=type(following).__module__,
                message=_message_of(following),
                frames=frames_of(following.__traceback__),
            )
        )
        current = following
    return causes


def _notes_of(exc: BaseException) -> list[str]:
    notes = getattr(exc, "__notes__", None)
    if not isinstance(notes, (list, tuple)):
        return []
    return [_message_of_note(note) for note in notes[:NOTES_MAX]]


def _message_of_note(note: object) -> str:
    text = note if isinstance(note, str) else repr(note)
    return truncate_utf8(text.encode("utf-8", errors="replace").decode("utf-8"), MESSAGE_BYTES_MAX)


def _details_of(exc: BaseException, kind: str) -> bytes:
    """Kind-specific details (msgpack map). None yet: shapes, dtypes and devices come later."""
    del exc, kind
    return b""
