"""Structured worker logs: one JSON object per line on stderr, tagged with the call's ids.

The host reads the worker's stderr line by line; a line that parses as a JSON object with
`"snakepit": 1` is a log record (level, message, logger, correlation_id, traceparent), anything
else (a tool's print(), a C library's chatter) arrives at the host as a plain record.

The ids come from a context variable the servicer binds around each admitted call
(`correlate_calls`), so `logging.getLogger(__name__).info(...)` inside a tool needs no `ctx`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from typing import IO, Any

RECORD_MARKER = "snakepit"
RECORD_VERSION = 1
TEXT_FORMAT_ENV = "SNAKEPIT_WORKER_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# (correlation_id, traceparent) of the call this thread or task serves; None outside calls.
_current_call: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "snakepit_current_call", default=None
)


def bind_call(correlation_id: str, traceparent: str) -> contextvars.Token[tuple[str, str] | None]:
    """Tags log records emitted from here on (this thread or task) with the call's ids."""
    return _current_call.set((correlation_id, traceparent))


def unbind_call(token: contextvars.Token[tuple[str, str] | None]) -> None:
    """Undoes `bind_call`; from another context it clears the ids instead of raising."""
    try:
        _current_call.reset(token)
    except ValueError:
        _current_call.set(None)


def call_variable() -> contextvars.ContextVar[tuple[str, str] | None]:
    """The context variable `bind_call` sets (the C lean loop binds it the same way)."""
    return _current_call


def current_call() -> tuple[str, str] | None:
    """The (correlation_id, traceparent) bound here, or None."""
    return _current_call.get()


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one line of JSON; never raises on odd messages."""

    def format(self, record: logging.LogRecord) -> str:
        call = getattr(record, "snakepit_call", None) or _current_call.get()
        entry: dict[str, Any] = {
            RECORD_MARKER: RECORD_VERSION,
            "time": int(record.created * 1000),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if call is not None:
            entry["correlation_id"], entry["traceparent"] = call
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # Newlines inside strings are escaped by json.dumps, so a record is always one line.
        return json.dumps(entry, ensure_ascii=False, default=repr, separators=(",", ":"))


class _CallFilter(logging.Filter):
    """Captures the call's ids when the record is made (a handler may format later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "snakepit_call"):
            record.snakepit_call = _current_call.get()
        return True


def install(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Configures the root logger: JSON lines on stderr (or plain text when
    $SNAKEPIT_WORKER_LOG_FORMAT is "text"). Replaces handlers a previous call installed."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if os.environ.get(TEXT_FORMAT_ENV, "json") == "text":
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    else:
        handler.setFormatter(JsonLineFormatter())
    handler.addFilter(_CallFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_snakepit", False):
            root.removeHandler(existing)
    handler._snakepit = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime
    return handler


class _BoundAdmission:
    """Wraps the servicer's admission `with` block: binds the call's ids for its duration."""

    __slots__ = ("_inner", "_token")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._token: contextvars.Token[tuple[str, str] | None] | None = None

    def __enter__(self) -> Any:
        ctx = self._inner.__enter__()
        self._token = bind_call(ctx.correlation_id, ctx.traceparent)
        return ctx

    def __exit__(self, *exc: object) -> Any:
        if self._token is not None:
            unbind_call(self._token)
        return self._inner.__exit__(*exc)


def correlate_calls(servicer: Any) -> None:
    """Makes every call the servicer admits bind its correlation id and traceparent for logs.

    Async tools inherit the binding: asyncio copies the submitting thread's context into the task.
    """
    admitted = servicer._admitted

    def _admitted(request: Any, context: Any) -> _BoundAdmission:
        return _BoundAdmission(admitted(request, context))

    servicer._admitted = _admitted
