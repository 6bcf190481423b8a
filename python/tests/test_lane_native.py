"""The C lean loop (`_lane_native.c`): plain calls run off the ring in C, with the Python path's
results, errors, log ids, counters and fallbacks; driven by the Python host of lane_host.py."""

from __future__ import annotations

import os
import random
import shutil
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lane_host import (
    SLOT_BYTES,
    SLOT_COUNT,
    TEST_SPIN_NS,
    HostLane,
    Served,
    await_condition,
    call,
    host,  # noqa: F401 - a fixture
    instance,  # noqa: F401 - a fixture
    library,  # noqa: F401 - a fixture
    mutate_slot,
    serve,  # noqa: F401 - a fixture
    unpack,
)

from snakepit_bridge import lane_native, log_records, native
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.adapter import Adapter, tool
from snakepit_bridge.lane import (
    FRAME_SPILL,
    OFF_REQ_STARTED,
    OFF_REQ_TAIL,
    OFF_RESP_HEAD,
    REQ_CANCEL,
    RESP_ERROR,
    RESP_RESULT,
    SLOT_HEADER_BYTES,
    Lane,
    encode_call,
)
from snakepit_bridge.lane_lean import LeanCalls
from snakepit_bridge.lane_writer import ResponseWriter
from snakepit_bridge.server import WorkerIdentity, WorkerServicer

c_loop = pytest.mark.parametrize("serve", ["c-loop"], indirect=True)


class LeanAdapter(Adapter):
    """Plain sync tools, each probing one duty of the lean loop."""

    def __init__(self) -> None:
        self.servicer: Any = None
        self.release = threading.Event()

    @tool
    def add(self, a: int, b: int = 2) -> int:
        return a + b

    @tool
    def fail(self, message: str) -> None:
        raise ValueError(message)

    @tool
    def ids(self) -> Any:
        """The call's ids as log records see them."""
        return log_records.current_call()

    @tool
    def running(self) -> Any:
        """The call the servicer reports running (Ping, Cancel), while this runs."""
        return self.servicer.lane_call

    @tool
    def text(self, n: int) -> str:
        return "x" * n

    @tool
    def a_set(self) -> Any:
        return {1, 2}

    @tool
    def a_float(self) -> float:
        return 1.5


def start_lean(serve: Callable[..., Served]) -> tuple[Served, LeanAdapter]:
    adapter = LeanAdapter()
    served = serve(adapter)
    adapter.servicer = served.servicer
    return served, adapter


def loop_calls(served: Served) -> int:
    native = served.server._native
    assert native is not None, "the C lean loop is not serving this lane"
    return native.calls


def test_the_c_lean_loop_is_built_wherever_a_c_compiler_is() -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the package installs without its C lean loop")
    assert lane_native.layout_mismatches() == []
    assert lane_native.available()


def test_the_switch_turns_the_c_lean_loop_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lane_native.ENV_SWITCH, "0")
    assert not lane_native.enabled()
    monkeypatch.setenv(lane_native.ENV_SWITCH, "1")
    assert lane_native.enabled() == lane_native.available()


@c_loop
def test_plain_calls_run_in_the_c_loop_with_the_python_paths_results(
    serve: Callable[..., Served],
) -> None:
    served, _ = start_lean(serve)
    host = served.host
    host.send(call("n", "ids", {}), call("a", "add", {"a": 40}), call("b", "add", {"a": 1, "b": 1}))
    first, second, third = host.receive(), host.receive(), host.receive()
    assert first[:2] == [RESP_RESULT, "n"] and unpack(first[2]) == ["corr-n", ""]
    assert second[:2] == [RESP_RESULT, "a"] and unpack(second[2]) == 42
    assert third[:2] == [RESP_RESULT, "b"] and unpack(third[2]) == 2
    assert all(frame[3] == worker_pb2.ENCODING_MSGPACK for frame in (first, second, third))
    assert all(isinstance(ns, int) and ns >= 0 for ns in first[4:] + second[4:])
    assert loop_calls(served) == 3
    assert host.word(OFF_REQ_TAIL) == 3 and host.word(OFF_REQ_STARTED) == 3
    assert log_records.current_call() is None, "the ids are unbound after the call"
    host.send(call("r", "running", {}))
    assert unpack(host.receive()[2]) == "r", "the servicer names the running call"
    assert served.servicer.lane_call is None
    assert host.quiet()


@c_loop
def test_a_tool_that_raises_sends_the_error_frame_with_its_traceback(
    serve: Callable[..., Served],
) -> None:
    served, _ = start_lean(serve)
    served.host.send(call("f", "fail", {"message": "on purpose"}), call("ok", "add", {"a": 1}))
    frame = served.host.receive()
    assert frame[:2] == [RESP_ERROR, "f"]
    error = worker_pb2.ExecuteResponse.FromString(frame[2]).error
    assert (error.python_type, error.message) == ("ValueError", "on purpose")
    assert [frame.function for frame in error.frames][-1] == "fail", (
        "the traceback reaches the tool"
    )
    assert unpack(served.host.receive()[2]) == 3, "the lane goes on after the error"
    assert loop_calls(served) == 2 and served.broken == []


@c_loop
def test_a_call_cancelled_in_an_earlier_batch_is_left_to_python_which_drops_it(
    serve: Callable[..., Served],
) -> None:
    served, _ = start_lean(serve)
    host = served.host
    host.send([REQ_CANCEL, "x"])
    assert await_condition(lambda: host.word(OFF_REQ_TAIL) == 1)
    host.send(call("x", "add", {"a": 1}), call("y", "add", {"a": 2}))
    assert unpack(host.receive()[2]) == 4, "y ran, x did not"
    assert host.word(OFF_REQ_STARTED) == 3
    assert loop_calls(served) == 0, "the batch went to Python from x on"
    # A cancel for a call long finished stays in the worker's memory; the loop carries on.
    host.send([REQ_CANCEL, "y"])
    assert await_condition(lambda: host.word(OFF_REQ_TAIL) == 4)
    host.send(call("z", "add", {"a": 3}))
    assert unpack(host.receive()[2]) == 5
    assert loop_calls(served) == 1
    assert host.quiet()


@c_loop
def test_arguments_the_signature_refuses_take_the_python_path_and_its_error(
    serve: Callable[..., Served],
) -> None:
    served, _ = start_lean(serve)
    served.host.send(call("bad", "add", {"b": 1}), call("extra", "add", {"a": 1, "c": 2}))
    for request_id in ("bad", "extra"):
        frame = served.host.receive()
        assert frame[:2] == [RESP_ERROR, request_id]
        error = worker_pb2.ExecuteResponse.FromString(frame[2]).error
        assert error.kind == "invalid_arguments", error
    assert loop_calls(served) == 0


@c_loop
def test_results_the_plain_packer_refuses_go_through_the_full_encoder(
    serve: Callable[..., Served],
) -> None:
    served, _ = start_lean(serve)
    served.host.send(call("set", "a_set", {}), call("float", "a_float", {}))
    refused = served.host.receive()
    assert refused[:2] == [RESP_ERROR, "set"]
    error = worker_pb2.ExecuteResponse.FromString(refused[2]).error
    assert "set" in error.message, error.message
    assert unpack(served.host.receive()[2]) == 1.5
    assert loop_calls(served) == 2


@c_loop
def test_a_result_past_a_slot_is_spilled_by_the_writer(serve: Callable[..., Served]) -> None:
    served, _ = start_lean(serve)
    host = served.host
    host.send(call("big", "text", {"n": 2 * SLOT_BYTES}), call("small", "text", {"n": 3}))
    spilled = host.receive()
    assert spilled[0] == FRAME_SPILL
    assert host.resolve(spilled)[:2] == [RESP_RESULT, "big"]
    assert unpack(host.resolve(spilled)[2]) == "x" * 2 * SLOT_BYTES
    assert unpack(host.receive()[2]) == "xxx"
    assert loop_calls(served) == 2


@c_loop
def test_a_full_response_ring_makes_the_c_loop_wait_for_the_host(
    serve: Callable[..., Served],
) -> None:
    served, _ = start_lean(serve)
    host = served.host
    host.send(*(call(f"c{index}", "add", {"a": index}) for index in range(SLOT_COUNT)))
    assert await_condition(lambda: host.responses_waiting() == SLOT_COUNT)
    # The ring is full and nothing is read: the next call runs, then its reply waits for space.
    host.send(*(call(f"c{index}", "add", {"a": index}) for index in range(SLOT_COUNT, 12)))
    assert await_condition(lambda: host.word(OFF_REQ_STARTED) == SLOT_COUNT + 1)
    assert host.responses_waiting() == SLOT_COUNT
    replies = [host.receive() for _ in range(12)]
    assert [frame[1] for frame in replies] == [f"c{index}" for index in range(12)]
    assert [unpack(frame[2]) for frame in replies] == [index + 2 for index in range(12)]
    assert loop_calls(served) == 12 and served.broken == []


@pytest.fixture
def bare_loop(library: native.NativeLibrary, host: HostLane) -> Iterator[tuple[Any, HostLane]]:
    """A LaneLoop over `host`'s lane, with no reader thread: the test calls `serve` itself."""
    if not lane_native.available():
        pytest.skip(f"the C lean loop is not built: {lane_native.layout_mismatches()}")
    read_end, write_end = os.pipe()
    servicer = WorkerServicer(LeanAdapter(), WorkerIdentity(adapter="lean"), max_concurrency=1)
    lane = Lane(library, host.name, instance=host.instance)
    writer = ResponseWriter(lane, write_end, TEST_SPIN_NS, 1_000_000_000)
    loop = lane_native.lean_loop(
        servicer, lane, writer, write_end, LeanCalls(servicer, writer).send_error, {}
    )
    try:
        yield loop, host
    finally:
        del loop
        writer.close()
        lane.close()
        servicer.close()
        os.close(read_end)
        os.close(write_end)


def test_fuzzed_call_slots_are_served_correctly_or_left_to_python_never_anything_else(
    bare_loop: tuple[Any, HostLane],
) -> None:
    loop, host = bare_loop
    generator = random.Random(0xC100)
    outcomes = {"served": 0, "left": 0}
    index = 0
    for round_number in range(3000):
        frame = encode_call(call(f"c{round_number}", "add", {"a": round_number}))
        host.write_request(index, frame)
        # A third of the frames stay whole (and are served), the rest take 1 or 2 mutations.
        for _ in range(generator.randrange(3)):
            mutate_slot(host, generator, index, len(frame))
        offset = host.request_slot(index)
        slot = bytes(host.view[offset : offset + host.slot_bytes])
        response_head = host.word(OFF_RESP_HEAD)
        started = host.word(OFF_REQ_STARTED)
        consumed, served = loop.serve(index, index + 1)
        if served == 0:
            outcomes["left"] += 1
            assert consumed == index
            assert host.word(OFF_RESP_HEAD) == response_head, "a frame left to Python sent nothing"
            assert host.word(OFF_REQ_STARTED) == started, "nor counted a call started"
            continue
        outcomes["served"] += 1
        assert (consumed, served) == (index + 1, 1)
        sequence, epoch, length, _ = struct.unpack_from("<4I", slot)
        assert (sequence, epoch) == (index, host.epoch) and len(frame) == length
        assert host.word(OFF_REQ_STARTED) == index + 1
        identifier_length = struct.unpack_from("<H", slot, SLOT_HEADER_BYTES + 20)[0]
        identifier = slot[SLOT_HEADER_BYTES + 36 : SLOT_HEADER_BYTES + 36 + identifier_length]
        reply = host.receive()
        assert reply[0] in (RESP_RESULT, RESP_ERROR) and reply[1] == identifier.decode()
        index += 1
    assert all(count > 500 for count in outcomes.values()), outcomes
