"""ExecuteStream: one chunk per yielded value, then an end chunk or an error chunk."""

from __future__ import annotations

import time

from worker_harness import (
    ECHO,
    NUMERIC,
    request,
    socket_directory,  # noqa: F401 - fixture
    start_worker,  # noqa: F401 - fixture
    unpack,
    wait_until,
)

from snakepit_bridge._generated import worker_pb2


def body(chunk: worker_pb2.StreamChunk) -> str:
    return chunk.WhichOneof("body")


def test_stream_yields_items_in_sequence_then_an_end_chunk(start_worker):
    worker = start_worker(NUMERIC)
    stream = worker.stub.ExecuteStream(request("count", {"n": 5}, request_id="s1"), timeout=10)
    chunks = list(stream)
    assert [body(c) for c in chunks] == ["item"] * 5 + ["end"]
    assert [c.sequence for c in chunks] == [0, 1, 2, 3, 4, 5]
    assert all(c.request_id == "s1" for c in chunks)
    assert [unpack(c.item.data) for c in chunks[:-1]] == [0, 1, 2, 3, 4]
    assert chunks[-1].end.items == 5
    assert chunks[-1].end.timing.encode_ns > 0


def test_an_empty_stream_is_just_the_end_chunk(start_worker):
    chunks = list(start_worker(NUMERIC).stub.ExecuteStream(request("count", {"n": 0}), timeout=10))
    assert [body(c) for c in chunks] == ["end"]
    assert chunks[0].end.items == 0


def test_an_exception_mid_stream_becomes_a_final_error_chunk(start_worker):
    worker = start_worker(NUMERIC)
    chunks = list(worker.stub.ExecuteStream(request("count", {"n": 5, "fail_at": 2}), timeout=10))
    assert [body(c) for c in chunks] == ["item", "item", "error"]
    error = chunks[-1].error
    assert chunks[-1].sequence == 2
    assert (error.kind, error.python_type) == ("python", "RuntimeError")
    assert error.message == "count failed on purpose at item 2"
    assert error.frames[-1].function == "count"
    assert "raise RuntimeError" in error.frames[-1].source


def test_async_generator_tools_stream_too(start_worker):
    worker = start_worker(ECHO)
    chunks = list(worker.stub.ExecuteStream(request("count_async", {"n": 3}), timeout=10))
    assert [unpack(c.item.data) for c in chunks[:-1]] == [0, 1, 2]
    assert chunks[-1].end.items == 3


def test_a_plain_tool_called_as_a_stream_yields_its_one_result(start_worker):
    chunks = list(start_worker(NUMERIC).stub.ExecuteStream(request("add", {"a": 1, "b": 2})))
    assert [body(c) for c in chunks] == ["item", "end"]
    assert unpack(chunks[0].item.data) == 3


def test_stream_errors_before_the_first_item_are_error_chunks(start_worker):
    chunks = list(start_worker(NUMERIC).stub.ExecuteStream(request("nope"), timeout=10))
    assert [body(c) for c in chunks] == ["error"]
    assert chunks[0].error.kind == "unknown_tool"


def test_cancel_rpc_stops_a_stream_with_a_cancelled_error_chunk(start_worker):
    worker = start_worker(NUMERIC)
    stream = worker.stub.ExecuteStream(
        request("count", {"n": 100_000, "delay_ms": 5}, request_id="long"), timeout=30
    )
    assert body(next(stream)) == "item"
    assert worker.stub.Cancel(worker_pb2.CancelRequest(request_id="long"), timeout=5).found
    rest = list(stream)
    assert body(rest[-1]) == "error"
    assert rest[-1].error.kind == "cancelled"
    assert len(rest) < 1000


def test_a_client_that_cancels_its_stream_stops_the_producer_and_frees_the_worker(start_worker):
    worker = start_worker(NUMERIC)
    stream = worker.stub.ExecuteStream(request("count", {"n": 100_000, "delay_ms": 5}), timeout=30)
    for _ in range(3):
        next(stream)
    stream.cancel()
    ping = worker.stub.Ping
    wait_until(lambda: ping(worker_pb2.PingRequest(), timeout=5).in_flight == 0, timeout_s=5)
    started = time.monotonic()
    assert worker.call("add", a=1, b=1) == 2, "the tool lock was released"
    assert time.monotonic() - started < 2
