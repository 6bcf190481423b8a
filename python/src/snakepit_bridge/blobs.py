"""Blobs: the chunked copy path, for values too big to travel inside one message.

A tensor or Arrow table that does not go through shared memory (zero-copy is off or
unavailable, or a region could not be made) and is at least the chunked-copy threshold in size
travels beside its call as a *blob*: its bytes stream in chunks of ``CHUNK_BYTES`` over the
worker's gRPC channel, in parts of at most ``PART_BYTES`` (one stream each: HTTP/2 flow control
on one very long stream stalls), and the payload carries a small reference in its place, so
arrays of 2 GiB and more cross although no gRPC message may reach 2 GiB.

- Arguments: the host uploads each blob (``PutBlob``, client streaming) before it sends the
  call; the payload names it with ext ``0x14`` ``[blob id, bytes]`` where the inline value's
  bytes would be. Decoding the argument claims the blob (it is used in place: no further copy).
- Results and stream items: the worker keeps the value's bytes as an outbound blob, names it
  the same way, and wraps the payload in ext ``0x15`` ``[[[blob id, bytes], ...], payload]``
  so that the host knows what to fetch (``GetBlob``, server streaming) before decoding.

A blob nobody claims (its call failed before decoding, the host never fetched a result) is
dropped after ``ttl_s``; a call's unclaimed argument blobs are dropped when it ends.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from snakepit_bridge.errors import SerializationError

EXT_BLOB: Final[int] = 0x14
EXT_BLOBBED_PAYLOAD: Final[int] = 0x15
THRESHOLD_VARIABLE: Final[str] = "SNAKEPIT_CHUNKED_COPY_THRESHOLD"
THRESHOLD_BYTES_DEFAULT: Final[int] = 64 * 1024 * 1024
# Just under gRPC's default 4 MiB message limit, so that any client can read the pieces.
CHUNK_BYTES: Final[int] = 4 * 1024 * 1024 - 4096
# A part (one PutBlob / GetBlob stream) carries at most this much (the host splits blobs).
PART_BYTES: Final[int] = 16 * CHUNK_BYTES
TTL_S_DEFAULT: Final[float] = 120.0


@dataclass
class _Partial:
    """An upload whose parts are still arriving."""

    buffer: bytearray
    filled: int
    created: float


class BlobError(Exception):
    """An upload or download that cannot proceed; ``status``: the gRPC status to abort with."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class BlobStore:
    """The worker's blobs in both directions; thread-safe (gRPC threads and the lane thread)."""

    def __init__(
        self, threshold_bytes: int = THRESHOLD_BYTES_DEFAULT, ttl_s: float = TTL_S_DEFAULT
    ) -> None:
        if not isinstance(threshold_bytes, int) or threshold_bytes < 1:
            raise ValueError(f"threshold_bytes must be an integer >= 1, got {threshold_bytes!r}")
        self.threshold_bytes = threshold_bytes
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._inbound: dict[str, tuple[bytearray, float]] = {}
        self._outbound: dict[str, tuple[memoryview, float]] = {}
        self._partial: dict[str, _Partial] = {}
        self._serial = itertools.count(1)

    @classmethod
    def from_env(cls, environment: Any) -> BlobStore:
        """The store the host's environment asks for; ValueError for a bad threshold."""
        text = str(environment.get(THRESHOLD_VARIABLE, "")).strip()
        if not text:
            return cls()
        if not text.isdigit() or int(text) < 1:
            raise ValueError(
                f"Cannot start the worker: {THRESHOLD_VARIABLE} must be an integer >= 1 "
                f"(bytes), received {text!r}"
            )
        return cls(int(text))

    # --- arguments (host to worker) -------------------------------------------------------

    def receive(self, chunks: Iterable[Any]) -> tuple[str, int]:
        """Stores one part of an upload (``BlobChunk`` messages, in order); ``(id, bytes so far)``.

        The first chunk names the blob, its whole size and the part's offset. A blob is ready
        to be claimed once its parts hold all its bytes. Raises BlobError when a part does not
        fit the size its blob announced.
        """
        iterator = iter(chunks)
        first = next(iterator, None)
        if first is None:
            raise BlobError("a blob upload carried no chunk", "INVALID_ARGUMENT")
        blob_id, total, offset = first.blob_id, int(first.total_bytes), int(first.offset)
        if not blob_id:
            raise BlobError("a blob upload's first chunk must name the blob", "INVALID_ARGUMENT")
        entry = self._partial_entry(blob_id, total)
        view = memoryview(entry.buffer)
        position = offset
        try:
            for chunk in itertools.chain((first,), iterator):
                size = len(chunk.data)
                if position + size > total:
                    raise BlobError(
                        f"blob {blob_id} announced {total} bytes, a part reaches past them",
                        "INVALID_ARGUMENT",
                    )
                view[position : position + size] = chunk.data
                position += size
        finally:
            view.release()
        with self._lock:
            entry.filled += position - offset
            filled = entry.filled
            if filled > total:
                self._partial.pop(blob_id, None)
                raise BlobError(
                    f"blob {blob_id} announced {total} bytes, its parts overlap", "INVALID_ARGUMENT"
                )
            if filled == total:
                self._partial.pop(blob_id, None)
                self._inbound[blob_id] = (entry.buffer, entry.created)
        return blob_id, filled

    def _partial_entry(self, blob_id: str, total: int) -> _Partial:
        now = time.monotonic()
        with self._lock:
            self._sweep_locked(now)
            entry = self._partial.get(blob_id)
            if entry is not None and len(entry.buffer) != total:
                raise BlobError(
                    f"blob {blob_id} announced {len(entry.buffer)} bytes, then {total}",
                    "INVALID_ARGUMENT",
                )
            if blob_id in self._inbound:
                raise BlobError(f"blob {blob_id} is already complete", "ALREADY_EXISTS")
            if entry is None:
                entry = self._partial[blob_id] = _Partial(bytearray(total), 0, now)
        return entry

    def claim(self, blob_id: str, nbytes: int) -> bytearray:
        """The uploaded bytes of ``blob_id``, taken from the store; SerializationError if none."""
        with self._lock:
            entry = self._inbound.pop(blob_id, None)
        if entry is None:
            raise SerializationError(
                f"Cannot decode a chunked value: blob {blob_id!r} was never uploaded to this "
                "worker whole, or was already used",
                suggestion="Send the call again; each call uploads its own blobs",
            )
        if len(entry[0]) != nbytes:
            raise SerializationError(
                f"Cannot decode a chunked value: blob {blob_id!r} holds {len(entry[0])} bytes, "
                f"the payload says {nbytes}"
            )
        return entry[0]

    def discard_call(self, request_id: str) -> None:
        """Drops the argument blobs of ``request_id`` that its call did not claim."""
        if not self._inbound and not self._partial:  # Unlocked peek: most calls carry none.
            return
        prefix = request_id + "."
        with self._lock:
            for table in (self._inbound, self._partial):
                for blob_id in [key for key in table if key.startswith(prefix)]:
                    del table[blob_id]

    # --- results (worker to host) ---------------------------------------------------------

    def offer(self, request_id: str, data: Any) -> tuple[str, int]:
        """Keeps ``data`` (a buffer) as an outbound blob; its ``(id, bytes)`` (``blob_ext``)."""
        view = memoryview(data).cast("B")
        blob_id = f"{request_id}.r{next(self._serial)}"
        now = time.monotonic()
        with self._lock:
            self._sweep_locked(now)
            self._outbound[blob_id] = (view, now)
        return blob_id, len(view)

    def send(self, blob_id: str, offset: int = 0, length: int = 0) -> Iterator[bytes]:
        """The chunks of ``length`` bytes (0: to the end) of outbound ``blob_id`` from ``offset``.

        The part that reaches the end of the blob takes it out of the store. BlobError when the
        blob is unknown or the range is outside it.
        """
        with self._lock:
            entry = self._outbound.get(blob_id)
            if entry is None:
                raise BlobError(
                    f"blob {blob_id!r} is not waiting on this worker (already fetched, or "
                    f"dropped after {self.ttl_s:g} s)",
                    "NOT_FOUND",
                )
            view = entry[0]
            end = len(view) if length == 0 else offset + length
            if offset < 0 or end > len(view) or offset > end:
                raise BlobError(
                    f"blob {blob_id!r} holds {len(view)} bytes; bytes {offset} to {end} are "
                    "outside it",
                    "OUT_OF_RANGE",
                )
            if end == len(view):
                del self._outbound[blob_id]
        return (
            bytes(view[start : min(start + CHUNK_BYTES, end)])
            for start in range(offset, end, CHUNK_BYTES)
        )

    def forget(self, refs: Iterable[tuple[str, int]]) -> None:
        """Drops outbound blobs that will never be fetched (their payload failed)."""
        with self._lock:
            for blob_id, _ in refs:
                self._outbound.pop(blob_id, None)

    @property
    def pending_count(self) -> int:
        """Blobs held in either direction."""
        with self._lock:
            return len(self._inbound) + len(self._outbound) + len(self._partial)

    def clear(self) -> None:
        with self._lock:
            self._inbound.clear()
            self._outbound.clear()
            self._partial.clear()

    def _sweep_locked(self, now: float) -> None:
        limit = now - self.ttl_s
        for table in (self._inbound, self._outbound):
            if table:
                for blob_id in [key for key, (_, at) in table.items() if at < limit]:
                    del table[blob_id]
        if self._partial:
            for blob_id in [key for key, entry in self._partial.items() if entry.created < limit]:
                del self._partial[blob_id]


def blob_ext(ref: tuple[str, int]) -> msgpack.ExtType:
    """The ext 0x14 that names blob ``(id, bytes)`` in a payload."""
    return msgpack.ExtType(EXT_BLOB, msgpack.packb(list(ref)))


def blob_ref(value: Any) -> tuple[str, int] | None:
    """``(id, bytes)`` when ``value`` is an ext 0x14 blob reference, else None."""
    if not isinstance(value, msgpack.ExtType) or value.code != EXT_BLOB:
        return None
    try:
        fields = msgpack.unpackb(value.data, raw=False)
    except Exception:  # noqa: BLE001 - a malformed reference is reported below
        fields = None
    if (
        not isinstance(fields, list)
        or len(fields) != 2
        or not isinstance(fields[0], str)
        or not isinstance(fields[1], int)
        or fields[1] < 0
    ):
        raise SerializationError(
            "Cannot decode a chunked value (msgpack ext 0x14): it must be "
            "[blob id: str, bytes: int]",
            suggestion="Both sides must use the same Snakepit version",
        )
    return fields[0], fields[1]


def blobbed_payload(refs: list[tuple[str, int]], payload: bytes) -> bytes:
    """``payload`` wrapped in ext 0x15 with the list of blobs the host must fetch first."""
    body = msgpack.packb([[list(ref) for ref in refs], payload], use_bin_type=True)
    return msgpack.packb(msgpack.ExtType(EXT_BLOBBED_PAYLOAD, body), use_bin_type=True)
