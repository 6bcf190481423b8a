"""Specification of the fast lane's worker end (`Lane`, `Ring`, `decode_frame`, `LaneServer`),
driven by a host written here in Python against the layout in src/bridge/lane/ring.ts.

Everything is real: shared-memory regions from the native library, futex words, a pipe for the
doorbell, and LaneServer threads serving EchoAdapter through a WorkerServicer.
"""

from __future__ import annotations

import fcntl
import os
import random
import secrets
import select
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest

from snakepit_bridge import native
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.examples.echo import EchoAdapter
from snakepit_bridge.lane import (
    FRAME_SPILL,
    HEADER_BYTES,
    LANE_MAGIC,
    LANE_VERSION,
    OFF_HOST_PARKED,
    OFF_REQ_HEAD,
    OFF_REQ_PARKED,
    OFF_REQ_TAIL,
    OFF_RESP_HEAD,
    OFF_RESP_SPACE_PARKED,
    OFF_RESP_TAIL,
    OFF_REQ_STARTED,
    RESP_EXPIRED,
    REQ_CALL,
    REQ_CANCEL,
    REQ_CREDIT,
    RESP_END,
    RESP_ERROR,
    RESP_ITEM,
    RESP_RESULT,
    SLOT_HEADER_BYTES,
    U32_MASK,
    Lane,
    LaneProtocolError,
    Ring,
    decode_frame,
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
_packb = msgpack.Packer(use_bin_type=True).pack


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
        self.send_bytes(*(_packb(frame) for frame in frames))

    def send_spilled(self, frame: list[Any]) -> str:
        """Sends `frame` in a region of its own; returns the region's name (the host closes
        its handle at once: the worker unlinks the name once it has read the frame)."""
        data = _packb(frame)
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


def call(
    request_id: str,
    tool: str,
    arguments: dict[str, Any] | None = None,
    *,
    stream: bool = False,
    queue_deadline_ms: float = 0,
) -> list[Any]:
    args = _packb(arguments) if arguments is not None else b""
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


@pytest.fixture
def serve(library: native.NativeLibrary, host: HostLane) -> Iterator[Callable[[], Served]]:
    """Starts a LaneServer over `host`'s lane, serving EchoAdapter one call at a time."""
    started: list[Served] = []
    closers: list[Callable[[], None]] = []

    def start() -> Served:
        read_end, write_end = os.pipe()
        closers.extend([lambda: os.close(read_end), lambda: os.close(write_end)])
        fcntl.fcntl(read_end, fcntl.F_SETFL, fcntl.fcntl(read_end, fcntl.F_GETFL) | os.O_NONBLOCK)
        servicer = WorkerServicer(EchoAdapter(), WorkerIdentity(adapter="echo"), max_concurrency=1)
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


# --- attaching ------------------------------------------------------------------------------


def lane_region(library: native.NativeLibrary, instance: str, **header: Any) -> Region:
    region = Region.create(library, HEADER_BYTES + 2 * SLOT_BYTES * SLOT_COUNT, instance=instance)
    view = region.view()
    write_header(view, **{"epoch": 0x1234_5678, **header})
    view.release()
    return region


def test_lane_attaches_to_a_region_the_host_initialized(
    library: native.NativeLibrary, host: HostLane
) -> None:
    lane = Lane(library, host.name, instance=host.instance)
    try:
        assert lane.epoch == host.epoch
        assert lane.slot_count == SLOT_COUNT
        assert lane.requests.capacity == SLOT_BYTES - SLOT_HEADER_BYTES
    finally:
        lane.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"magic": 0x4E4C5054}, "is not a fast lane (magic 0x4e4c5054)"),
        ({"magic": 0}, "is not a fast lane (magic 0x0)"),
        ({"epoch": 0}, "has a bad layout: epoch 0x0, 8 slots of 512 bytes"),
        ({"slot_count": 6}, "has a bad layout: epoch 0x12345678, 6 slots of 512 bytes"),
        ({"slot_count": 0}, "has a bad layout: epoch 0x12345678, 0 slots"),
        ({"slot_bytes": 100}, "has a bad layout: epoch 0x12345678, 8 slots of 100 bytes"),
        ({"slot_bytes": 516}, "8 slots of 516 bytes"),
        ({"slot_count": 16}, "16 slots of 512 bytes in a"),
        ({"slot_bytes": 1024}, "8 slots of 1024 bytes in a"),
    ],
)
def test_lane_refuses_a_region_with_a_bad_header(
    library: native.NativeLibrary, instance: str, header: dict[str, int], expected: str
) -> None:
    with lane_region(library, instance, **header) as region:
        with pytest.raises(LaneProtocolError) as caught:
            Lane(library, region.name, instance=instance)
    message = str(caught.value)
    assert region.name in message
    assert expected in message


def test_lane_refuses_a_layout_larger_than_the_payload_naming_the_payload_size(
    library: native.NativeLibrary, instance: str
) -> None:
    with lane_region(library, instance, slot_count=SLOT_COUNT * 2) as region:
        with pytest.raises(LaneProtocolError, match="bad layout") as caught:
            Lane(library, region.name, instance=instance)
        assert f"in a {region.payload_bytes}-byte payload" in str(caught.value)


def test_lane_refuses_another_protocol_version_naming_both_and_the_fix(
    library: native.NativeLibrary, instance: str
) -> None:
    with lane_region(library, instance, version=LANE_VERSION + 1) as region:
        with pytest.raises(LaneProtocolError) as caught:
            Lane(library, region.name, instance=instance)
    message = str(caught.value)
    assert f"protocol {LANE_VERSION + 1}" in message
    assert f"this worker speaks {LANE_VERSION}" in message
    assert "install matching versions of snakepit and snakepit-bridge" in message


def test_a_refused_lane_leaves_the_region_usable_and_unmapped(
    library: native.NativeLibrary, instance: str
) -> None:
    with lane_region(library, instance, magic=0) as region:
        for _ in range(3):
            with pytest.raises(LaneProtocolError):
                Lane(library, region.name, instance=instance)
        assert region.info().holders == 1


# --- reading slots --------------------------------------------------------------------------


def request_ring(host: HostLane) -> Ring:
    return Ring(host.view, HEADER_BYTES, host.slot_bytes, host.slot_count, host.epoch)


def test_ring_reads_a_slot_whose_sequence_epoch_and_length_match(host: HostLane) -> None:
    ring = request_ring(host)
    frame = _packb([REQ_CANCEL, "r1"])
    host.write_request(3, frame)
    assert ring.read(3) == frame
    # Counters wrap at 2**32: frame 2**32 - 1 lives in the last slot.
    host.write_request(U32_MASK, frame)
    assert ring.read(U32_MASK) == frame
    big = bytes(range(256)) * 2
    host.write_request(4, big[: host.capacity])
    assert ring.read(4) == big[: host.capacity]


def test_ring_refuses_a_slot_from_another_epoch(host: HostLane) -> None:
    host.write_request(1, b"\x91\x01", epoch=host.epoch ^ 0x5A5A5A5A)
    with pytest.raises(LaneProtocolError, match="stale ring from another process") as caught:
        request_ring(host).read(1)
    assert f"the lane's is {host.epoch:#x}" in str(caught.value)


@pytest.mark.parametrize("sequence", [0, 2, 1 + SLOT_COUNT, U32_MASK])
def test_ring_refuses_a_slot_carrying_another_frame(host: HostLane, sequence: int) -> None:
    host.write_request(1, b"\x91\x01", sequence=sequence)
    with pytest.raises(LaneProtocolError, match=r"expected frame 1 \(a stale or torn slot\)"):
        request_ring(host).read(1)


@pytest.mark.parametrize("length", [0, SLOT_BYTES - SLOT_HEADER_BYTES + 1, U32_MASK])
def test_ring_refuses_a_length_of_zero_or_past_the_slot(host: HostLane, length: int) -> None:
    host.write_request(2, b"\x91\x01", length=length)
    with pytest.raises(LaneProtocolError) as caught:
        request_ring(host).read(2)
    assert str(caught.value) == (
        f"frame 2 claims {length} bytes; a slot holds 1 to {SLOT_BYTES - SLOT_HEADER_BYTES}"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xc1", "frame 7 is not valid msgpack"),
        (b"", "frame 7 is not valid msgpack"),
        (b"\x92\x01", "frame 7 is not valid msgpack"),  # truncated array
        (_packb([1]) + b"\x00", "frame 7 is not valid msgpack"),  # trailing bytes
        (_packb({"kind": 1}), "frame 7 is not a [kind, ...] array"),
        (_packb(7), "frame 7 is not a [kind, ...] array"),
        (_packb([]), "frame 7 is not a [kind, ...] array"),
        (_packb(["call", "id"]), "frame 7 is not a [kind, ...] array"),
        (_packb([None]), "frame 7 is not a [kind, ...] array"),
    ],
)
def test_decode_frame_refuses_what_is_not_a_kind_array(data: bytes, expected: str) -> None:
    with pytest.raises(LaneProtocolError) as caught:
        decode_frame(data, 7)
    assert str(caught.value).startswith(expected)


def test_decode_frame_returns_the_frame_as_a_list() -> None:
    assert decode_frame(_packb([REQ_CREDIT, "s1", 4]), 0) == [REQ_CREDIT, "s1", 4]
    assert decode_frame(_packb([REQ_CALL, "c", b"\x00"]), 0) == [REQ_CALL, "c", b"\x00"]


def test_fuzzed_slots_are_read_correctly_or_refused_never_anything_else(host: HostLane) -> None:
    generator = random.Random(0x5EED)
    ring = request_ring(host)
    capacity = host.capacity
    outcomes = {"read": 0, "decoded": 0, "refused": 0}
    for round_number in range(3000):
        index = generator.randrange(1 << 32)
        host.write_request(index, _packb(call(f"c{round_number}", "echo", {"value": round_number})))
        offset = host.request_slot(index)
        for _ in range(generator.randrange(1, 4)):
            choice = generator.random()
            if choice < 0.3:
                word = generator.randrange(4)
                interesting = [0, 1, U32_MASK, capacity, capacity + 1, index, host.epoch]
                value = generator.choice([*interesting, generator.getrandbits(32)])
                struct.pack_into("<I", host.view, offset + 4 * word, value)
            elif choice < 0.5:
                struct.pack_into("<I", host.view, offset + 8, generator.randrange(1, capacity + 1))
            else:
                start = offset + SLOT_HEADER_BYTES + generator.randrange(capacity)
                end = min(offset + host.slot_bytes, start + generator.randrange(1, 32))
                host.view[start:end] = generator.randbytes(end - start)
        sequence, epoch, length, _ = struct.unpack_from("<4I", host.view, offset)
        try:
            data = ring.read(index)
        except LaneProtocolError:
            outcomes["refused"] += 1
            assert (sequence, epoch) != (index, host.epoch) or not 0 < length <= capacity
            continue
        outcomes["read"] += 1
        assert (sequence, epoch) == (index, host.epoch) and 0 < length <= capacity
        body = offset + SLOT_HEADER_BYTES
        assert data == bytes(host.view[body : body + length])
        try:
            frame = decode_frame(data, index)
        except LaneProtocolError:
            outcomes["refused"] += 1
            continue
        outcomes["decoded"] += 1
        assert isinstance(frame, list) and isinstance(frame[0], int)
    assert all(count > 100 for count in outcomes.values()), outcomes


# --- serving calls --------------------------------------------------------------------------


def test_noop_and_echo_calls_return_result_frames(serve: Callable[[], Served]) -> None:
    served = serve()
    host = served.host
    host.send(call("c1", "noop", {}))
    frame = host.receive()
    assert frame[:2] == [RESP_RESULT, "c1"] and len(frame) == 7
    assert unpack(frame[2]) is None
    assert frame[3] == worker_pb2.ENCODING_MSGPACK
    assert all(isinstance(ns, int) and ns >= 0 for ns in frame[4:])

    value = {"list": [1, 2.5, "three", None, True], "bytes": b"\x00\xff", "nested": {"k": -7}}
    host.send(call("c2", "echo", {"value": value}), call("c3", "echo", {"value": "second"}))
    first, second = host.receive(), host.receive()
    assert first[:2] == [RESP_RESULT, "c2"] and unpack(first[2]) == value
    assert second[:2] == [RESP_RESULT, "c3"] and unpack(second[2]) == "second"
    assert host.word(OFF_REQ_TAIL) == host.request_head
    assert host.quiet()


def test_calls_go_on_after_the_request_and_response_counters_wrap(
    serve: Callable[[], Served],
) -> None:
    host = serve().host
    for index in range(3 * SLOT_COUNT):
        host.send(call(f"w{index}", "echo", {"value": index}))
        frame = host.receive()
        assert frame[:2] == [RESP_RESULT, f"w{index}"] and unpack(frame[2]) == index


def test_an_async_tool_runs_through_the_servicer_and_returns_a_result_frame(
    serve: Callable[[], Served],
) -> None:
    host = serve().host
    host.send(call("a1", "echo_async", {"value": [1, 2]}))
    frame = host.receive()
    assert frame[:2] == [RESP_RESULT, "a1"] and unpack(frame[2]) == [1, 2]


def test_an_unknown_tool_is_an_error_frame_carrying_an_execute_response(
    serve: Callable[[], Served],
) -> None:
    host = serve().host
    host.send(call("u1", "no_such_tool", {}))
    frame = host.receive()
    assert frame[:2] == [RESP_ERROR, "u1"] and len(frame) == 3
    response = worker_pb2.ExecuteResponse.FromString(frame[2])
    assert response.request_id == "u1"
    assert response.WhichOneof("outcome") == "error"
    assert response.error.kind == "unknown_tool"
    assert "'no_such_tool'" in response.error.message
    assert "echo" in response.error.message


def test_a_tool_that_raises_is_an_error_frame_not_a_broken_lane(
    serve: Callable[[], Served],
) -> None:
    served = serve()
    served.host.send(call("f1", "fail_async", {"message": "on purpose"}))
    frame = served.host.receive()
    assert frame[:2] == [RESP_ERROR, "f1"]
    error = worker_pb2.ExecuteResponse.FromString(frame[2]).error
    assert (error.python_type, error.message) == ("ValueError", "on purpose")
    assert served.broken == []


def test_a_stream_sends_items_only_as_far_as_its_credit_allows(
    serve: Callable[[], Served],
) -> None:
    host = serve().host
    host.send(call("s1", "count_async", {"n": 5}, stream=True), [REQ_CREDIT, "s1", 2])
    items = [host.receive(), host.receive()]
    assert [frame[:2] for frame in items] == [[RESP_ITEM, "s1"]] * 2
    assert [unpack(frame[2]) for frame in items] == [0, 1]
    assert [frame[4] for frame in items] == [0, 1]
    assert all(frame[3] == worker_pb2.ENCODING_MSGPACK for frame in items)
    assert host.quiet(), "an item arrived without credit"

    host.send([REQ_CREDIT, "s1", 10])
    rest = [host.receive() for _ in range(4)]
    assert [frame[0] for frame in rest] == [RESP_ITEM] * 3 + [RESP_END]
    assert [unpack(frame[2]) for frame in rest[:3]] == [2, 3, 4]
    assert [frame[4] for frame in rest[:3]] == [2, 3, 4]
    assert rest[3] == [RESP_END, "s1", 5]
    assert host.quiet()


def test_a_cancelled_stream_stops_waiting_for_credit_and_sends_nothing_more(
    serve: Callable[[], Served],
) -> None:
    host = serve().host
    host.send(call("s2", "count_async", {"n": 100}, stream=True), [REQ_CREDIT, "s2", 1])
    assert host.receive()[:2] == [RESP_ITEM, "s2"]
    host.send([REQ_CANCEL, "s2"], [REQ_CREDIT, "s2", 50])
    assert host.quiet()
    host.send(call("after", "noop", {}))
    assert host.receive()[:2] == [RESP_RESULT, "after"]


def test_a_call_past_its_queue_deadline_is_dropped_unrun_with_an_expired_reply(
    serve: Callable[[], Served],
) -> None:
    host = serve().host
    past_ms = time.time() * 1000 - 1
    host.send(
        call("late", "record", {"label": "late"}, queue_deadline_ms=past_ms),
        call("on-time", "record", {"label": "on-time"}, queue_deadline_ms=time.time() * 1000 + 60_000),
    )
    assert host.receive() == [RESP_EXPIRED, "late"]
    assert host.receive()[:2] == [RESP_RESULT, "on-time"]
    host.send(call("log", "records", {}))
    assert unpack(host.receive()[2]) == ["on-time"], "the expired call never ran"


def test_the_started_counter_follows_the_calls_the_worker_starts(
    serve: Callable[[], Served],
) -> None:
    host = serve().host
    assert host.word(OFF_REQ_STARTED) == 0
    host.send(call("a", "noop", {}), [REQ_CANCEL, "zzz"], call("b", "noop", {}))
    assert host.receive()[:2] == [RESP_RESULT, "a"]
    assert host.receive()[:2] == [RESP_RESULT, "b"]
    assert host.word(OFF_REQ_STARTED) == 3, "1 + the frame index of the last call started"


def test_a_call_cancelled_before_it_was_read_never_runs_and_gets_no_reply(
    serve: Callable[[], Served],
) -> None:
    host = serve().host
    host.send(
        call("kept", "record", {"label": "kept"}),
        call("dropped", "record", {"label": "dropped"}),
        [REQ_CANCEL, "dropped"],
    )
    kept = host.receive()
    assert kept[:2] == [RESP_RESULT, "kept"] and unpack(kept[2]) == 1
    host.send(call("log", "records", {}))
    log = host.receive()
    assert log[:2] == [RESP_RESULT, "log"], "the cancelled call was answered"
    assert unpack(log[2]) == ["kept"]
    assert host.quiet()


# --- spilled frames -------------------------------------------------------------------------


def test_a_request_past_a_slot_travels_spilled_and_the_worker_unlinks_its_region(
    serve: Callable[[], Served], instance: str
) -> None:
    host = serve().host
    label = "L" * (2 * SLOT_BYTES)
    name = host.send_spilled(call("big", "record", {"label": label}))
    frame = host.receive()
    assert frame[:2] == [RESP_RESULT, "big"] and unpack(frame[2]) == 1
    assert name.lstrip("/") not in shm_names(instance), "the worker left the spill's name"
    assert host.pending_spill is not None
    host.pending_spill.close()
    host.pending_spill = None
    host.send(call("log", "records", {}))
    log = host.resolve(host.receive())
    assert log[:2] == [RESP_RESULT, "log"] and unpack(log[2]) == [label]


def test_a_response_past_a_slot_arrives_spilled_and_is_closed_once_the_tail_passes_it(
    serve: Callable[[], Served], library: native.NativeLibrary, instance: str
) -> None:
    host = serve().host
    value = bytes(range(256)) * (3 * SLOT_BYTES // 256)
    host.send_spilled(call("big", "echo", {"value": value}))
    spill = host.receive()
    assert spill[0] == FRAME_SPILL and len(spill) == 3
    _, name, length = spill
    assert length > host.capacity
    frame = host.resolve(spill)
    assert frame[:2] == [RESP_RESULT, "big"] and unpack(frame[2]) == value
    assert host.pending_spill is not None
    host.pending_spill.close()
    host.pending_spill = None
    # The worker keeps its region until a later send sees the host's tail past the spill.
    assert name.lstrip("/") in shm_names(instance)
    host.send(call("next", "noop", {}))
    assert host.receive()[:2] == [RESP_RESULT, "next"]
    assert await_condition(lambda: name.lstrip("/") not in shm_names(instance)), (
        "the worker kept its spill region after the host's tail passed it"
    )


def test_spill_regions_still_held_when_the_server_stops_are_closed(
    serve: Callable[[], Served], library: native.NativeLibrary, instance: str
) -> None:
    served = serve()
    host = served.host
    host.send_spilled(call("big", "echo", {"value": "v" * (2 * SLOT_BYTES)}))
    spill = host.receive()
    assert spill[0] == FRAME_SPILL
    assert host.pending_spill is not None
    host.pending_spill.close()
    host.pending_spill = None
    served.server.stop()
    assert await_condition(lambda: spill[1].lstrip("/") not in shm_names(instance))


# --- doorbell -------------------------------------------------------------------------------


def test_the_doorbell_rings_only_when_the_host_said_it_parked(
    serve: Callable[[], Served],
) -> None:
    served = serve()
    host = served.host
    host.send(call("quiet", "noop", {}))
    assert host.receive()[:2] == [RESP_RESULT, "quiet"]
    assert served.doorbell_bytes() == b"", "the doorbell rang for a host that was not parked"

    host.set_word(OFF_HOST_PARKED, 1)
    host.send(call("loud", "noop", {}))
    readable, _, _ = select.select([served.doorbell], [], [], WAIT_S)
    assert readable, "the doorbell did not ring for a parked host"
    assert served.doorbell_bytes() == b"\n"
    assert host.word(OFF_HOST_PARKED) == 0, "publishing must clear the parked flag"
    assert host.receive()[:2] == [RESP_RESULT, "loud"]

    host.send(call("quiet2", "noop", {}))
    assert host.receive()[:2] == [RESP_RESULT, "quiet2"]
    assert served.doorbell_bytes() == b""


# --- broken lanes and stopping --------------------------------------------------------------


def corrupt_bad_epoch(host: HostLane) -> None:
    host.write_request(host.request_head, _packb(call("x", "noop", {})), epoch=host.epoch ^ 1)
    host.request_head += 1
    host.publish_request_head()


def corrupt_torn(host: HostLane) -> None:
    host.write_request(host.request_head, _packb(call("x", "noop", {})), sequence=99)
    host.request_head += 1
    host.publish_request_head()


def corrupt_garbage(host: HostLane) -> None:
    host.send_bytes(b"\xc1\xc1\xc1")


def corrupt_unknown_kind(host: HostLane) -> None:
    host.send([7, "x"])


def corrupt_short_call(host: HostLane) -> None:
    host.send([REQ_CALL, "x", "noop"])


def corrupt_head_too_far(host: HostLane) -> None:
    host.request_head += SLOT_COUNT + 1
    host.publish_request_head()


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (corrupt_bad_epoch, "stale ring from another process"),
        (corrupt_torn, "a stale or torn slot"),
        (corrupt_garbage, "is not valid msgpack"),
        (corrupt_unknown_kind, "unknown request frame"),
        (corrupt_short_call, "bad call frame"),
        (corrupt_head_too_far, f"more than {SLOT_COUNT} frames past 1"),
    ],
)
def test_a_corrupted_request_ring_calls_on_broken_and_stops_serving(
    serve: Callable[[], Served], corrupt: Callable[[HostLane], None], expected: str
) -> None:
    served = serve()
    host = served.host
    host.send(call("ok", "noop", {}))
    assert host.receive()[:2] == [RESP_RESULT, "ok"]
    corrupt(host)
    assert served.broken_event.wait(WAIT_S), "on_broken was not called"
    assert len(served.broken) == 1
    assert isinstance(served.broken[0], LaneProtocolError)
    assert expected in str(served.broken[0])
    assert await_condition(
        lambda: not any(t.name == "snakepit-lane-reader" for t in lane_threads())
    ), "the reader kept serving a broken lane"


def test_stop_returns_promptly_while_the_reader_is_parked(serve: Callable[[], Served]) -> None:
    served = serve()
    host = served.host
    assert await_condition(lambda: host.word(OFF_REQ_PARKED) != 0), "the reader never parked"
    started = time.monotonic()
    served.server.stop()
    assert time.monotonic() - started < 0.5
    assert served.broken == []


def test_a_parked_reader_thread_ends_promptly_after_stop(serve: Callable[[], Served]) -> None:
    served = serve()
    host = served.host
    assert await_condition(lambda: host.word(OFF_REQ_PARKED) != 0), "the reader never parked"
    served.server.stop()
    assert await_condition(
        lambda: not any(t.name == "snakepit-lane-reader" for t in lane_threads()), 0.5
    ), "the parked reader did not wake on stop()"
