"""Zero-copy tensors and Arrow tables in call payloads: the worker's side of shared memory.

One :class:`RegionBroker` per worker holds what every call shares: the native library, the
pool's region secret, the region instance name, the size threshold and the result regions
waiting for the host to adopt them. One :class:`CallRegions` per call decodes the arguments'
shared values (after checking their tokens) and encodes results, and closes the call's regions
when the call ends. The wire forms are in ``tensor_wire``.

Hand-over of a result region needs no acknowledgement message: the worker creates the region
(one reference), sends it, and keeps it pending. The host opens it (a second reference) and
bumps its generation, which is the adoption signal; the worker then closes its reference. A
region the host never adopts (the reply was dropped) is closed after ``hold_limit_s``, and with
its last reference gone the library unlinks it.

Example (the worker builds its broker from the environment the host set)::

    broker = RegionBroker.from_env("pool_a")
    regions = broker.call("request-1")
    try:
        arguments = codec.decode(data, worker_pb2.ENCODING_MSGPACK, regions)
        reply = codec.encode(tool(**arguments), worker_pb2.ENCODING_MSGPACK, regions)
    finally:
        regions.close()
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from snakepit_bridge import tensor_wire
from snakepit_bridge.blobs import BlobStore
from snakepit_bridge.native_region import INSTANCE_PATTERN
from snakepit_bridge.tensor_call import CallRegions

if TYPE_CHECKING:
    from snakepit_bridge.native import NativeLibrary
    from snakepit_bridge.native_region import Region

SECRET_VARIABLE: Final[str] = "SNAKEPIT_REGION_SECRET"
ZERO_COPY_VARIABLE: Final[str] = "SNAKEPIT_ZERO_COPY"
THRESHOLD_VARIABLE: Final[str] = "SNAKEPIT_ZERO_COPY_THRESHOLD"
THRESHOLD_BYTES_DEFAULT: Final[int] = 65536
HOLD_LIMIT_S_DEFAULT: Final[float] = 30.0
SWEEP_INTERVAL_S: Final[float] = 0.02
# Regions whose close found views still alive (a tool kept an array) are retried this often
# when nothing is pending; a tool may keep its array for the worker's life.
LINGER_RETRY_S: Final[float] = 1.0
PENDING_REGIONS_MAX: Final[int] = 4096

logger = logging.getLogger("snakepit_bridge.tensors")


@dataclass
class _Pending:
    region: Region
    generation: int
    deadline_monotonic: float


class RegionBroker:
    """The worker's shared-memory state: secret, library, threshold and pending hand-overs.

    ``enabled`` says whether results may go to shared memory; when not, ``disabled_reason``
    says why. ``wire`` says whether the host speaks the tensor ext types at all: a host that set
    neither ``SNAKEPIT_REGION_SECRET`` nor ``SNAKEPIT_ZERO_COPY`` predates them, and for it
    arrays keep being refused with advice, as before. Shared arguments are accepted whenever
    the secret and the library are there.
    """

    def __init__(
        self,
        *,
        library: NativeLibrary | None,
        secret: bytes | None,
        instance: str,
        threshold_bytes: int = THRESHOLD_BYTES_DEFAULT,
        zero_copy: bool = True,
        wire: bool = True,
        hold_limit_s: float = HOLD_LIMIT_S_DEFAULT,
        disabled_reason: str = "",
        blobs: BlobStore | None = None,
    ) -> None:
        if secret is not None and len(secret) != tensor_wire.SECRET_BYTES:
            raise ValueError(f"secret must be 32 bytes, got {len(secret)}")
        if not isinstance(threshold_bytes, int) or threshold_bytes < 0:
            raise ValueError(f"threshold_bytes must be an integer >= 0, got {threshold_bytes!r}")
        if not hold_limit_s > 0:
            raise ValueError(f"hold_limit_s must be positive, got {hold_limit_s!r}")
        self.library = library
        self.secret = secret
        self.instance = instance
        self.threshold_bytes = threshold_bytes
        self.wire = wire
        self.blobs = blobs if blobs is not None else BlobStore()
        self.hold_limit_s = hold_limit_s
        self.disabled_reason = disabled_reason or _disabled_reason(
            library, secret, instance, zero_copy
        )
        self.enabled = not self.disabled_reason
        self.accepts_shared = library is not None and secret is not None
        self._pending: list[_Pending] = []
        self._lingering: list[Region] = []
        self._condition = threading.Condition()
        self._sweeper: threading.Thread | None = None
        self._closed = False

    @classmethod
    def from_env(
        cls,
        instance: str,
        environ: Mapping[str, str] | None = None,
        *,
        hold_limit_s: float = HOLD_LIMIT_S_DEFAULT,
    ) -> RegionBroker:
        """The broker the host's environment asks for; logs once (warning) why zero-copy is off.

        Raises ``ValueError`` for a threshold that is not an integer >= 0.
        """
        environment = os.environ if environ is None else environ
        wire = SECRET_VARIABLE in environment or ZERO_COPY_VARIABLE in environment
        threshold_text = environment.get(THRESHOLD_VARIABLE, "").strip()
        threshold = THRESHOLD_BYTES_DEFAULT
        if threshold_text:
            if not threshold_text.isdigit():
                raise ValueError(
                    f"Cannot start the worker: {THRESHOLD_VARIABLE} must be an integer >= 0 "
                    f"(bytes), received {threshold_text!r}"
                )
            threshold = int(threshold_text)
        blobs = BlobStore.from_env(environment)
        secret, reason = _secret_from(environment.get(SECRET_VARIABLE))
        zero_copy = environment.get(ZERO_COPY_VARIABLE, "1").strip() != "0"
        library = None
        if not zero_copy:
            reason = f"{ZERO_COPY_VARIABLE}=0"
        elif secret is not None:
            library, reason = _load_library()
        broker = cls(
            library=library,
            secret=secret,
            instance=instance,
            threshold_bytes=threshold,
            zero_copy=zero_copy,
            wire=wire,
            hold_limit_s=hold_limit_s,
            disabled_reason=reason,
            blobs=blobs,
        )
        if wire and not broker.enabled:
            logger.warning("zero-copy disabled: %s", broker.disabled_reason)
        return broker

    @classmethod
    def disabled(cls, reason: str, instance: str = "worker") -> RegionBroker:
        """A broker that never touches shared memory and whose host predates tensors."""
        return cls(
            library=None, secret=None, instance=instance, wire=False, disabled_reason=reason
        )

    def call(self, request_id: str) -> CallRegions:
        """The regions of one call (cheap: nothing is made until a tensor shows up)."""
        return CallRegions(self, request_id)

    def hand_over(self, region: Region) -> None:
        """Keeps ``region`` (a result sent to the host) until the host adopts it or time is up."""
        pending = _Pending(
            region, region.info().generation, time.monotonic() + self.hold_limit_s
        )
        with self._condition:
            if self._closed:
                _close_or_keep(region, [])
                return
            if len(self._pending) >= PENDING_REGIONS_MAX:
                # Bounded: the oldest hand-over is given up, as if its hold limit had passed.
                _close_or_keep(self._pending.pop(0).region, self._lingering)
            self._pending.append(pending)
            self._start_sweeper()
            self._condition.notify()

    def release_later(self, region: Region) -> None:
        """Closes ``region`` now, or later once the arrays a tool kept over it are gone."""
        with self._condition:
            _close_or_keep(region, self._lingering)
            if self._lingering:
                self._start_sweeper()
                self._condition.notify()

    def sweep_if_due(self) -> None:
        """`sweep`, when regions wait for it (an unlocked peek first: most calls leave none)."""
        if self._pending or self._lingering:
            self.sweep()

    def sweep(self) -> None:
        """Closes the pending regions the host adopted or never will, and retries lingering ones."""
        with self._condition:
            if self._pending or self._lingering:
                self._sweep_locked(time.monotonic())

    @property
    def pending_count(self) -> int:
        """Result regions sent and not yet adopted nor given up."""
        with self._condition:
            return len(self._pending)

    @property
    def lingering_count(self) -> int:
        """Regions whose close waits for arrays a tool kept."""
        with self._condition:
            return len(self._lingering)

    def close(self) -> None:
        """Releases every pending region and blob and stops the sweeper (worker shutdown)."""
        self.blobs.clear()
        with self._condition:
            self._closed = True
            pending, self._pending = self._pending, []
            for entry in pending:
                _close_or_keep(entry.region, self._lingering)
            lingering, self._lingering = self._lingering, []
            for region in lingering:
                _close_or_keep(region, self._lingering)
            self._condition.notify_all()
        sweeper = self._sweeper
        if sweeper is not None and sweeper is not threading.current_thread():
            sweeper.join(1.0)

    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = threading.Thread(
                target=self._sweep_forever, name="snakepit-region-sweeper", daemon=True
            )
            self._sweeper.start()

    def _sweep_forever(self) -> None:
        with self._condition:
            while not self._closed:
                if self._pending:
                    self._condition.wait(SWEEP_INTERVAL_S)
                elif self._lingering:
                    self._condition.wait(LINGER_RETRY_S)
                else:
                    self._condition.wait()  # Nothing to watch: sleep until a hand-over.
                if self._pending or self._lingering:
                    self._sweep_locked(time.monotonic())

    def _sweep_locked(self, now: float) -> None:
        kept: list[_Pending] = []
        for entry in self._pending:
            if now >= entry.deadline_monotonic or _adopted(entry):
                _close_or_keep(entry.region, self._lingering)
            else:
                kept.append(entry)
        self._pending = kept
        lingering, self._lingering = self._lingering, []
        for region in lingering:
            _close_or_keep(region, self._lingering)


def _adopted(entry: _Pending) -> bool:
    from snakepit_bridge.native_errors import SharedMemoryError

    try:
        return entry.region.info().generation != entry.generation
    except SharedMemoryError:
        return True  # A region that cannot be read any more is not worth holding.


def _close_or_keep(region: Region, lingering: list[Region]) -> None:
    from snakepit_bridge.native_errors import SharedMemoryError

    try:
        region.close()
    except SharedMemoryError as error:
        if error.status_name == "views_alive":
            lingering.append(region)
        else:
            logger.warning("closing region %s failed: %s", region.name, error)


def _disabled_reason(
    library: NativeLibrary | None, secret: bytes | None, instance: str, zero_copy: bool
) -> str:
    if not zero_copy:
        return f"{ZERO_COPY_VARIABLE}=0"
    if secret is None:
        return f"{SECRET_VARIABLE} is not set"
    if library is None:
        return "the native library is not loaded"
    if not INSTANCE_PATTERN.fullmatch(instance):
        return f"instance {instance!r} does not match {INSTANCE_PATTERN.pattern}"
    if os.path.isdir("/dev/shm") and not os.access("/dev/shm", os.W_OK):
        return "/dev/shm is not writable"
    return ""


def _secret_from(text: str | None) -> tuple[bytes | None, str]:
    if text is None or text == "":
        return None, f"{SECRET_VARIABLE} is not set"
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        secret = b""
    if len(secret) != tensor_wire.SECRET_BYTES:
        return None, f"{SECRET_VARIABLE} is not 64 hex digits (32 bytes)"
    return secret, ""


def _load_library() -> tuple[NativeLibrary | None, str]:
    try:
        from snakepit_bridge import native

        return native.load(), ""
    except Exception as error:  # noqa: BLE001 - no library means no zero-copy, never a crash
        return None, f"the native library is unavailable: {error}"


__all__ = ["CallRegions", "RegionBroker"]
