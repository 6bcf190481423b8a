"""Exceptions the bridge raises and their translation into the wire's `ErrorPayload`.

A Python failure crosses to TypeScript as data, never as a bare string: its classification
(`kind`), type, module, message, traceback frames, cause chain, notes, kind-specific details and
a suggestion. The host builds its typed error classes from `kind`, so `kind` is decided here: by
the exception's class first, by its message only as a fallback (`error_classify`). Everything
text-like is redacted and bounded (`redaction`) before it leaves the worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import traceback
from collections.abc import Iterable, Mapping
from types import TracebackType

import msgpack

from snakepit_bridge import error_classify
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.error_classify import (
    KIND_DEVICE,
    KIND_DTYPE_MISMATCH,
    KIND_IMPORT,
    KIND_OUT_OF_MEMORY,
    KIND_PYTHON,
    KIND_SHAPE_MISMATCH,
    Classification,
)
from snakepit_bridge.redaction import (
    FRAMES_MAX_DEFAULT,
    MESSAGE_BYTES_MAX_DEFAULT,
    ErrorPolicy,
    configure_errors,
    current_policy,
)

MESSAGE_BYTES_MAX = MESSAGE_BYTES_MAX_DEFAULT
FRAMES_MAX = FRAMES_MAX_DEFAULT
CAUSES_MAX = 8
NOTES_MAX = 16
SOURCE_CHARS_MAX = 512
# Text longer than this many characters per byte of the limit is cut before redaction: the
# payload keeps at most `message_bytes_max` bytes anyway, and regular expressions over megabytes
# of text would make the error path slow.
_REDACT_CHARS_PER_BYTE = 4

KIND_UNKNOWN_TOOL = "unknown_tool"
KIND_INVALID_ARGUMENTS = "invalid_arguments"
KIND_SERIALIZATION = "serialization"
KIND_CANCELLED = "cancelled"
KIND_DEADLINE_EXCEEDED = "deadline_exceeded"
KIND_WORKER_BUSY = "worker_busy"
KIND_REGION_ACCESS = "region_access"

REGION_TOKEN_INVALID = "token_invalid"
REGION_ZERO_COPY_DISABLED = "zero_copy_disabled"
REGION_UNAVAILABLE = "region_unavailable"
REGION_DESCRIPTOR_INVALID = "descriptor_invalid"
REGION_ACCESS_REASONS = frozenset(
    {REGION_TOKEN_INVALID, REGION_ZERO_COPY_DISABLED, REGION_UNAVAILABLE, REGION_DESCRIPTOR_INVALID}
)

__all__ = [
    "KIND_DEVICE",
    "KIND_DTYPE_MISMATCH",
    "KIND_IMPORT",
    "KIND_OUT_OF_MEMORY",
    "KIND_PYTHON",
    "KIND_SHAPE_MISMATCH",
    "configure_errors",
]

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


class RegionAccessError(SnakepitBridgeError):
    """A shared-memory value in a payload was refused; nothing of it was opened or kept.

    `reason` is one of `token_invalid` (forged, or replayed from another call, role, region,
    generation or descriptor), `zero_copy_disabled` (this worker has no region secret or no
    native library), `region_unavailable` (not found, released or at another generation) or
    `descriptor_invalid` (the native validation refused it). Decide on `reason`, never on the
    message. The wire `details` carry `reason`, `region` and, when a native call failed, `status`.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        region_name: str = "",
        status_name: str = "",
        suggestion: str = "",
    ) -> None:
        if reason not in REGION_ACCESS_REASONS:
            raise ValueError(
                f"RegionAccessError reason must be one of {sorted(REGION_ACCESS_REASONS)}, "
                f"got {reason!r}"
            )
        super().__init__(message, suggestion=suggestion)
        self.reason = reason
        self.region_name = region_name
        self.status_name = status_name

    @property
    def details(self) -> dict[str, str]:
        """What the error payload's `details` map carries for this error."""
        details = {"reason": self.reason, "region": self.region_name}
        if self.status_name:
            details["status"] = self.status_name
        return details


def classify(exc: BaseException) -> str:
    """Returns the wire `kind` for an exception: the bridge's own classes, then `error_classify`."""
    bridge_kind = _bridge_kind(exc)
    return bridge_kind if bridge_kind is not None else error_classify.classify_exception(exc).kind


def _bridge_kind(exc: BaseException) -> str | None:
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
    if isinstance(exc, RegionAccessError):
        return KIND_REGION_ACCESS
    return None


def error_payload(
    exc: BaseException, kind: str | None = None, *, policy: ErrorPolicy | None = None
) -> worker_pb2.ErrorPayload:
    """Builds the structured, redacted wire form of `exc`.

    `kind` overrides the classification (and drops its details); `policy` defaults to the
    worker's (`configure_errors`, `SNAKEPIT_*` variables).
    """
    rules = policy if policy is not None else current_policy()
    bridge_kind = _bridge_kind(exc)
    classification = (
        Classification(kind=bridge_kind, details=_bridge_details(exc))
        if bridge_kind is not None
        else error_classify.classify_exception(exc)
    )
    resolved_kind = kind if kind is not None else classification.kind
    own_suggestion = getattr(exc, "suggestion", "")
    suggestion = own_suggestion if isinstance(own_suggestion, str) and own_suggestion else ""
    details = classification.details if resolved_kind == classification.kind else {}
    return worker_pb2.ErrorPayload(
        kind=resolved_kind,
        python_type=type(exc).__qualname__,
        python_module=type(exc).__module__,
        message=_message_of(exc, rules),
        # The bridge's own refusals (unknown tool, bad arguments, ...) raised by the dispatch
        # code have no frames worth showing; a bug elsewhere in the bridge keeps its frames.
        frames=frames_of(
            exc.__traceback__,
            keep_dispatch_only=not isinstance(exc, SnakepitBridgeError),
            policy=rules,
        ),
        causes=_causes_of(exc, rules),
        notes=_notes_of(exc, rules),
        suggestion=_bounded(rules, suggestion or classification.suggestion),
        retryable=resolved_kind == KIND_WORKER_BUSY
        or (resolved_kind == classification.kind and classification.retryable),
        details=_details_of(details, rules),
    )


def _bridge_details(exc: BaseException) -> dict[str, object]:
    # Only the region error carries details among the bridge's own errors.
    return exc.details if isinstance(exc, RegionAccessError) else {}


def frames_of(
    tb: TracebackType | None,
    *,
    keep_dispatch_only: bool = True,
    policy: ErrorPolicy | None = None,
) -> list[worker_pb2.TracebackFrame]:
    """Traceback frames, innermost last, at most `frames_max`, without leading dispatch frames.

    File names have the policy's path prefixes replaced; source lines are redacted.

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
    rules = policy if policy is not None else current_policy()
    return [
        worker_pb2.TracebackFrame(
            file=rules.shorten_paths(summary.filename),
            line=summary.lineno or 0,
            function=summary.name,
            source=rules.redact((summary.line or "").strip()[: SOURCE_CHARS_MAX * 2])[
                :SOURCE_CHARS_MAX
            ],
        )
        for summary in chosen[-rules.frames_max :]
    ]


def truncate_utf8(text: str, limit_bytes: int, *, dropped_bytes: int = 0) -> str:
    """Cuts `text` to at most `limit_bytes` of UTF-8, marking the cut, never splitting a char.

    `dropped_bytes` counts text already cut off before, so the marker tells the whole loss.
    """
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= limit_bytes and dropped_bytes == 0:
        return text
    marker = f"... [truncated {len(encoded) + dropped_bytes - limit_bytes} bytes]"
    head = encoded[: max(0, limit_bytes - len(marker))].decode("utf-8", errors="ignore")
    return head + marker


def _is_dispatch_file(filename: str) -> bool:
    return os.path.dirname(os.path.abspath(filename)) in _DISPATCH_DIRECTORIES


def _message_of(exc: BaseException, policy: ErrorPolicy) -> str:
    # str() of an exception runs user code (__str__) and may itself fail; the payload must still
    # be built, so fall back to the type name rather than let the failure escape.
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - any failure of user __str__ degrades, never propagates
        text = f"<unprintable {type(exc).__qualname__}>"
    return _bounded(policy, text)


def _bounded(policy: ErrorPolicy, text: str) -> str:
    """`text` redacted, made valid UTF-8 and cut to the policy's message limit."""
    limit = policy.message_bytes_max
    cut = text[: limit * _REDACT_CHARS_PER_BYTE]
    # Surrogates cannot travel in a protobuf string; replace rather than fail.
    cut = cut.encode("utf-8", errors="replace").decode("utf-8")
    redacted = policy.redact(cut)
    if len(cut) < len(text):
        # Count the cut-off part in the truncation marker, as if it had been kept this far.
        dropped = len(text[len(cut) :].encode("utf-8", errors="replace"))
        return truncate_utf8(redacted, limit, dropped_bytes=dropped)
    return truncate_utf8(redacted, limit)


def _causes_of(exc: BaseException, policy: ErrorPolicy) -> list[worker_pb2.ErrorCause]:
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
                message=_message_of(following, policy),
                frames=frames_of(following.__traceback__, policy=policy),
            )
        )
        current = following
    return causes


def _notes_of(exc: BaseException, policy: ErrorPolicy) -> list[str]:
    notes = getattr(exc, "__notes__", None)
    if not isinstance(notes, (list, tuple)):
        return []
    return [_bounded(policy, _note_text(note)) for note in notes[:NOTES_MAX]]


def _note_text(note: object) -> str:
    if isinstance(note, str):
        return note
    try:
        return repr(note)
    except Exception:  # noqa: BLE001 - an unprintable note must not stop the payload
        return f"<unprintable {type(note).__qualname__}>"


def _details_of(details: Mapping[str, object], policy: ErrorPolicy) -> bytes:
    """Kind-specific details as a msgpack map (shapes, dtypes, devices, bytes); b"" when none."""
    if not details:
        return b""
    return msgpack.packb(policy.redact_value(dict(details)), use_bin_type=True)
