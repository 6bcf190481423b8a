"""A fast-lane host written in Python, for the worker-end tests (test_lane_*.py): it lays out
a lane region exactly as src/bridge/lane/ring.ts does, writes request frames, reads replies, and
provides the fixtures (a library, an instance, a host lane, a served LaneServer).

Everything is real: shared-memory regions from the native library, futex words, a pipe for the
doorbell, and LaneServer threads serving EchoAdapter through a WorkerServicer.
"""

from __future__ import annotations

import fcntl
import os
import random
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest

from snakepit_bridge import lane_native, native
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.adapter import Adapter
from snakepit_bridge.examples.echo import EchoAdapter
from snakepit_bridge.lane import (
    FRAME_SPILL,
    HEADER_BYTES,
    LANE_MAGIC,
    LANE_VERSION,
    OFF_REQ_HEAD,
    OFF_REQ_PARKED,
    OFF_RESP_HEAD,
    OFF_RESP_SPACE_PARKED,
    OFF_RESP_TAIL,
    REQ_CALL,
    SLOT_HEADER_BYTES,
    U32_MASK,
    Lane,
    decode_frame,
    encode_call,
)
from snakepit_bridge.lane_server import LaneServer
from snakepit_bridge.native_region import Region
from snakepit_bridge.server import WorkerIdentity, WorkerServicer

SLOT_BYTES = 512
SLOT_COUNT = 8
WAIT_S = 5.0
QUIET_S = 0.2
# A small spin so the reader parks quickly (the parked flag is what some tests wait for).
TEST_SPIN_NS = 10_000
THREADS_EXIT_S = 3.0
SHM = Path("/dev/shm")
_counter = iter(range(1_000_000))
packb = msgpack.Packer(use_bin_type=True).pack


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


def await_condition(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    """Polls `condition` until it holds or `timeout` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def lane_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("snakepit-lane")]


def shm_names(instance: str) -> set[str]:
    return {path.name for path in SHM.glob(f"snakepit-{instance}-*")}


def write_header(
    view: memoryview,
    *,
    epoch: int,
    slot_bytes: int = SLOT_BYTES,
    slot_count: int = SLOT_COUNT,
    magic: int = LANE_MAGIC,
    version: int = LANE_VERSION,
) -> None:
    """The header as ring.ts's `LaneLayout.initialize` writes it: zeroed, then magic last."""
    view[:HEADER_BYTES] = bytes(HEADER_BYTES)
    struct.pack_into("<4I", view, 4, version, epoch, slot_bytes, slot_count)
    struct.pack_into("<I", view, 0, magic)


class HostLane:
    """The host's end of a lane: creates the region, writes requests, reads responses."""

    def __init__(
        self,
        library: native.NativeLibrary,
        instance: str,
        *,
        slot_bytes: int = SLOT_BYTES,
        slot_count: int = SLOT_COUNT,
    ) -> None:
        self.library = library
        self.instance = instance
        self.slot_bytes = slot_bytes
        self.slot_count = slot_count
        self.capacity = slot_bytes - SLOT_HEADER_BYTES
        self.region = Region.create(
            library, HEADER_BYTES + 2 * slot_bytes * slot_count, instance=instance
        )
        self.name = self.region.name
        self.view = self.region.view()
        self.epoch = 0
        while self.epoch == 0:
            self.epoch = secrets.randbits(32)
        write_header(self.view, epoch=self.epoch, slot_bytes=slot_bytes, slot_count=slot_count)
        self.request_head = 0
        self.response_tail = 0
        self.pending_spill: Region | None = None

    def close(self) -> None:
        self.view.release()
        self.region.close()

    # --- words ------------------------------------------------------------------------------

    def word(self, offset: int) -> int:
        return struct.unpack_from("<I", self.view, offset)[0]

    def set_word(self, offset: int, value: int) -> None:
        struct.pack_into("<I", self.view, offset, value & U32_MASK)

    # --- requests ---------------------------------------------------------------------------

    def request_slot(self, index: int) -> int:
        return HEADER_BYTES + (index & (self.slot_count - 1)) * self.slot_bytes

    def write_request(
        self,
        index: int,
        frame: bytes,
        *,
        sequence: int | None = None,
        epoch: int | None = None,
        length: int | None = None,
    ) -> None:
        offset = self.request_slot(index)
        start = offset + SLOT_HEADER_BYTES
        self.view[start : start + len(frame)] = frame
        struct.pack_into(
            "<4I",
            self.view,
            offset,
            (index if sequence is None else sequence) & U32_MASK,
            self.epoch if epoch is None else epoch,
            len(frame) if length is None else length,
            0,
        )

    def send_bytes(self, *frames: bytes) -> None:
        """Writes frames into consecutive request slots, then publishes the head once."""
        for frame in frames:
            assert len(frame) <= self.capacity, "use send_spilled for frames past a slot"
            self.write_request(self.request_head, frame)
            self.request_head = (self.request_head + 1) & U32_MASK
        self.publish_request_head()

    def publish_request_head(self) -> None:
        self.region.publish_word(OFF_REQ_HEAD, self.request_head, OFF_REQ_PARKED)

    def send(self, *frames: list[Any]) -> None:
        """Sends frames as the host does: well-formed calls in their binary layout, everything
        else (and malformed calls, for the error tests) as msgpack arrays."""
        self.send_bytes(
            *(
                encode_call(frame) if frame[0] == REQ_CALL and len(frame) == 11 else packb(frame)
                for frame in frames
            )
        )

    def send_spilled(self, frame: list[Any]) -> str:
        """Sends `frame` in a region of its own; returns the region's name (the host closes
        its handle at once: the worker unlinks the name once it has read the frame)."""
        data = packb(frame)
        assert len(data) > self.capacity
        # The host keeps its reference until the reply arrives (as lane_transport.ts does):
        # closing it sooner would unlink the region before the worker opened it.
        spill = Region.create(self.library, len(data), instance=self.instance)
        view = spill.view()
        view[: len(data)] = data
        view.release()
        self.pending_spill = spill
        self.send([FRAME_SPILL, spill.name, len(data)])
        return spill.name

    # --- responses --------------------------------------------------------------------------

    def response_slot(self, index: int) -> int:
        return HEADER_BYTES + (self.slot_count + (index & (self.slot_count - 1))) * self.slot_bytes

    def read_response(self, index: int) -> bytes:
        """Response frame `index`, checked against its slot header as ring.ts does."""
        offset = self.response_slot(index)
        sequence, epoch, length, _ = struct.unpack_from("<4I", self.view, offset)
        assert epoch == self.epoch, f"response slot epoch {epoch:#x}, lane {self.epoch:#x}"
        assert sequence == index, f"response slot carries frame {sequence}, expected {index}"
        assert 0 < length <= self.capacity, length
        start = offset + SLOT_HEADER_BYTES
        return bytes(self.view[start : start + length])

    def responses_waiting(self) -> int:
        return (self.word(OFF_RESP_HEAD) - self.response_tail) & U32_MASK

    def await_response(self, timeout: float = WAIT_S) -> bool:
        deadline = time.monotonic() + timeout
        while self.responses_waiting() == 0:
            if time.monotonic() > deadline:
                return False
            # No parked flag: the worker rings no doorbell and wakes nobody; this polls.
            self.region.wait_word(
                OFF_RESP_HEAD, self.response_tail, spin_ns=50_000, timeout=0.001
            )
        return True

    def receive(self, timeout: float = WAIT_S) -> list[Any]:
        """The next response frame (a spill frame is returned as is); publishes the tail."""
        assert self.await_response(timeout), "no response frame arrived"
        frame = decode_frame(self.read_response(self.response_tail), self.response_tail)
        self.response_tail = (self.response_tail + 1) & U32_MASK
        self.region.publish_word(OFF_RESP_TAIL, self.response_tail, OFF_RESP_SPACE_PARKED)
        assert isinstance(frame, list), frame
        return frame

    def resolve(self, frame: list[Any]) -> list[Any]:
        """`frame`, or the frame a spill frame names, read from the worker's region."""
        if frame[0] != FRAME_SPILL:
            return frame
        _, name, length = frame
        with Region.open(self.library, name) as region:
            view = region.view()
            data = bytes(view[:length])
            view.release()
        return decode_frame(data, 0)

    def quiet(self, seconds: float = QUIET_S) -> bool:
        """True when no response frame arrives within `seconds`."""
        return not self.await_response(seconds)


def mutate_slot(host: HostLane, generator: random.Random, index: int, frame_length: int) -> None:
    """One random mutation of request slot `index`, which holds a frame of `frame_length`
    bytes: a header word (often a value at an edge), the length word, a byte of the frame's
    first 36 (a binary call's fixed header: marker, lengths, deadlines), or a run of random
    bytes in the frame."""
    offset = host.request_slot(index)
    choice = generator.random()
    if choice < 0.25:
        word = generator.randrange(4)
        interesting = [0, 1, U32_MASK, host.capacity, host.capacity + 1, index, host.epoch]
        value = generator.choice([*interesting, generator.getrandbits(32)])
        struct.pack_into("<I", host.view, offset + 4 * word, value & U32_MASK)
    elif choice < 0.4:
        struct.pack_into("<I", host.view, offset + 8, generator.randrange(1, host.capacity + 1))
    elif choice < 0.6:
        host.view[offset + SLOT_HEADER_BYTES + generator.randrange(36)] = generator.randrange(256)
    else:
        start = offset + SLOT_HEADER_BYTES + generator.randrange(frame_length)
        end = min(offset + host.slot_bytes, start + generator.randrange(1, 32))
        host.view[start:end] = generator.randbytes(end - start)


def call(
    request_id: str,
    tool: str,
    arguments: dict[str, Any] | None = None,
    *,
    stream: bool = False,
    queue_deadline_ms: float = 0,
) -> list[Any]:
    args = packb(arguments) if arguments is not None else b""
    return [
        REQ_CALL,
        request_id,
        tool,
        args,
        worker_pb2.ENCODING_MSGPACK,
        "",
        0,
        f"corr-{request_id}",
        "",
        stream,
        queue_deadline_ms,
    ]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def library() -> native.NativeLibrary:
    return native.load()


@pytest.fixture
def instance() -> Iterator[str]:
    """A region instance name of this test's own; nothing under it may outlive the test."""
    name = f"lane_{os.getpid()}_{next(_counter)}"[:20]
    yield name
    assert shm_names(name) == set(), "the test left shared-memory regions behind"


@pytest.fixture
def host(library: native.NativeLibrary, instance: str) -> Iterator[HostLane]:
    lane = HostLane(library, instance)
    try:
        yield lane
    finally:
        if lane.pending_spill is not None:
            lane.pending_spill.close()
        lane.close()


@dataclass
class Served:
    host: HostLane
    server: LaneServer
    lane: Lane
    servicer: WorkerServicer
    doorbell: int
    broken: list[BaseException] = field(default_factory=list)
    broken_event: threading.Event = field(default_factory=threading.Event)

    def doorbell_bytes(self) -> bytes:
        try:
            return os.read(self.doorbell, 4096)
        except BlockingIOError:
            return b""


@pytest.fixture(params=["c-loop", "python-loop"])
def serve(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    library: native.NativeLibrary,
    host: HostLane,
) -> Iterator[Callable[..., Served]]:
    """Starts a LaneServer over `host`'s lane, serving EchoAdapter one call at a time: once
    with the C lean loop (where it is built) and once with the Python path alone."""
    if request.param == "c-loop" and not lane_native.available():
        pytest.skip(f"the C lean loop is not built: {lane_native.layout_mismatches()}")
    monkeypatch.setenv(lane_native.ENV_SWITCH, "1" if request.param == "c-loop" else "0")
    started: list[Served] = []
    closers: list[Callable[[], None]] = []

    def start(adapter: Adapter | None = None) -> Served:
        read_end, write_end = os.pipe()
        closers.extend([lambda: os.close(read_end), lambda: os.close(write_end)])
        fcntl.fcntl(read_end, fcntl.F_SETFL, fcntl.fcntl(read_end, fcntl.F_GETFL) | os.O_NONBLOCK)
        servicer = WorkerServicer(
            adapter or EchoAdapter(), WorkerIdentity(adapter="echo"), max_concurrency=1
        )
        closers.append(servicer.close)
        lane = Lane(library, host.name, instance=host.instance)
        broken: list[BaseException] = []
        event = threading.Event()

        def on_broken(error: BaseException) -> None:
            broken.append(error)
            event.set()

        server = LaneServer(servicer, lane, write_end, spin_ns=TEST_SPIN_NS, on_broken=on_broken)
        served = Served(host, server, lane, servicer, read_end, broken, event)
        started.append(served)
        server.start()
        return served

    try:
        yield start
    finally:
        for served in started:
            served.server.stop()
        threads_gone = await_condition(lambda: not lane_threads(), THREADS_EXIT_S)
        for served in started:
            served.lane.close()
        for close in reversed(closers):
            close()
        assert threads_gone, f"lane threads outlived stop(): {lane_threads()}"
