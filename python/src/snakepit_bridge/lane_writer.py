"""`ResponseWriter`: the worker's end of the response ring (any thread may send).

A frame too big for a slot goes in a region of its own (closed once the host's tail is past
it); a full ring makes the sender spin, then park until the host frees a slot; the host is rung
(a byte on the protocol pipe) only when it said it parked.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import threading

import msgpack

from snakepit_bridge.lane import (
    FRAME_SPILL,
    OFF_HOST_PARKED,
    OFF_RESP_HEAD,
    OFF_RESP_SPACE_PARKED,
    OFF_RESP_TAIL,
    OK_STATUS,
    U32_MASK,
    Lane,
    encode_result,
)
from snakepit_bridge.native_region import Region

logger = logging.getLogger("snakepit_bridge.lane")

# Broken response frames `ResponseWriter.inject_fault` can write.
FAULT_KINDS = ("stale-epoch", "torn", "oversized", "garbage", "unknown-id")


class ResponseWriter:
    def __init__(self, lane: Lane, doorbell_fd: int, spin_ns: int, park_timeout_ns: int) -> None:
        self._lane = lane
        self._doorbell_fd = doorbell_fd
        self._spin_ns = spin_ns
        self._park_timeout_ns = park_timeout_ns
        self._lock = threading.Lock()
        self._head = lane.load(OFF_RESP_HEAD)
        self._tail = lane.load(OFF_RESP_TAIL)
        self._ring = lane.responses
        self._capacity = lane.responses.capacity
        self._slot_count = lane.slot_count
        self._out = lane.out_word()  # Native out-word, used under the lock.
        self._out_ref = ctypes.byref(self._out)
        self._publish_head = lane.publisher(OFF_RESP_HEAD)
        self._spills: collections.deque[tuple[int, Region]] = collections.deque()
        self._packb = msgpack.Packer(use_bin_type=True).pack
        self.stopping = False

    def send(self, frame: bytes) -> None:
        """Publishes `frame` as the next response; waits for a free slot if the ring is full."""
        with self._lock:
            if len(frame) > self._capacity:
                frame = self._spill(frame)
            tail = self._slot_free()
            if tail is None:
                return
            self._ring.write(self._head, frame)
            self._publish_next()
            if self._spills:
                self._close_read_spills(tail)

    def send_result(
        self,
        request_id: str,
        data: bytes,
        encoding: int,
        decode_ns: int,
        execute_ns: int,
        encode_ns: int,
    ) -> None:
        """Publishes a call's result frame, written straight into its slot when it fits one
        (the common case: no frame bytes are built), else as `send` does."""
        identifier = request_id.encode()
        with self._lock:
            head = self._head
            # Inlined (this runs for every call): the ring has room by the tail last read, no
            # spill waits to be closed, and the frame fits its slot.
            if (
                (head - self._tail) & U32_MASK < self._slot_count
                and not self._spills
                and self._ring.write_result(
                    head, identifier, data, encoding, decode_ns, execute_ns, encode_ns
                )
            ):
                head = self._head = (head + 1) & U32_MASK
                status = self._publish_head(head, OFF_HOST_PARKED, self._out_ref)
                if status != OK_STATUS:
                    raise self._lane.publish_failed(OFF_RESP_HEAD, status)
                if self._out.value:
                    self._ring_doorbell()
                return
        self.send(encode_result(request_id, data, encoding, decode_ns, execute_ns, encode_ns))

    def _slot_free(self) -> int | None:
        """Waits (under the lock) until the slot at the head is free; the tail read, or None
        when the writer stops meanwhile."""
        lane = self._lane
        head = self._head
        tail = self._tail
        # The tail last read is a lower bound: reread it only when it says the ring is full,
        # or when spilled frames wait to be closed.
        if (head - tail) & U32_MASK >= self._slot_count or self._spills:
            tail = self._tail = lane.load(OFF_RESP_TAIL)
        while (head - tail) & U32_MASK >= self._slot_count:
            waited = lane.wait(
                OFF_RESP_TAIL,
                tail,
                OFF_RESP_SPACE_PARKED,
                self._spin_ns,
                self._park_timeout_ns,
                self._out,
            )
            if self.stopping:
                return None
            tail = self._tail = lane.load(OFF_RESP_TAIL) if waited is None else waited
        return tail

    def inject_fault(self, kind: str) -> None:
        """Publishes one broken response frame, for tests of the host's defences: a slot from
        another epoch, a torn slot (wrong sequence), a length past the slot, bytes that are not
        msgpack, or a reply to a request that does not exist."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        lane = self._lane
        with self._lock:
            head = self._head
            ring = lane.responses
            if kind == "garbage":
                ring.write(head, b"\xc1\xc1\xc1")  # 0xc1 is a byte msgpack never uses
            else:
                ring.write(head, encode_result("no-such-request", b"\xc0", 1, 0, 0, 0))
            if kind == "stale-epoch":
                ring.patch_header(head, 1, lane.epoch ^ 0x5A5A5A5A)
            elif kind == "torn":
                ring.patch_header(head, 0, head + 7)
            elif kind == "oversized":
                ring.patch_header(head, 2, ring.capacity + 1)
            self._publish_next()

    def close(self) -> None:
        """Closes the spill regions still held (the worker stops)."""
        with self._lock:
            while self._spills:
                self._spills.popleft()[1].close()

    def _publish_next(self) -> None:
        self._head = (self._head + 1) & U32_MASK
        if self._lane.publish(OFF_RESP_HEAD, self._head, OFF_HOST_PARKED, self._out):
            self._ring_doorbell()

    def _ring_doorbell(self) -> None:
        try:
            os.write(self._doorbell_fd, b"\n")
        except OSError as error:  # The host is gone; its death stops this worker anyway.
            logger.debug("doorbell write failed: %s", error)

    def _spill(self, frame: bytes) -> bytes:
        region = self._lane.write_spill(frame)
        self._spills.append((self._head, region))
        return self._packb([FRAME_SPILL, region.name, len(frame)])

    def _close_read_spills(self, tail: int) -> None:
        # A spilled frame at index i has been read once the host's tail is past i.
        spills = self._spills
        while spills and 0 < ((tail - spills[0][0]) & U32_MASK) <= self._lane.slot_count:
            _, region = spills.popleft()
            region.close()
