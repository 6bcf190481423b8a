"""LaneServer: calls, streams with credit, cancels, queue deadlines, spilled frames, the
doorbell, broken lanes and stopping, driven by the Python host of lane_host.py."""

from __future__ import annotations

import select
import time
from collections.abc import Callable

import msgpack
import pytest

from snakepit_bridge import native
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.lane import (
    FRAME_SPILL,
    LaneProtocolError,
    OFF_HOST_PARKED,
    OFF_REQ_PARKED,
    OFF_REQ_STARTED,
    OFF_REQ_TAIL,
    REQ_CALL,
    REQ_CANCEL,
    REQ_CREDIT,
    RESP_END,
    RESP_ERROR,
    RESP_EXPIRED,
    RESP_ITEM,
    RESP_RESULT,
)

from lane_host import (
    SLOT_BYTES,
    SLOT_COUNT,
    WAIT_S,
    HostLane,
    Served,
    await_condition,
    call,
    host,  # noqa: F401 - a fixture
    instance,  # noqa: F401 - a fixture
    lane_threads,
    library,  # noqa: F401 - a fixture
    packb,
    serve,  # noqa: F401 - a fixture
    shm_names,
    unpack,
)

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
        call("on-time", "record", {"label": "on-time"}, queue_deadline_ms=time.time() * 1e3 + 6e4),
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
    host.write_request(host.request_head, packb(call("x", "noop", {})), epoch=host.epoch ^ 1)
    host.request_head += 1
    host.publish_request_head()


def corrupt_torn(host: HostLane) -> None:
    host.write_request(host.request_head, packb(call("x", "noop", {})), sequence=99)
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
