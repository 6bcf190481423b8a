"""Cancel, deadlines, admission, and Ping answering while tools hold the worker."""

from __future__ import annotations

import time

import pytest
from worker_harness import (
    ECHO,
    NUMERIC,
    request,
    socket_directory,  # noqa: F401 - fixture
    start_worker,  # noqa: F401 - fixture
    wait_until,
)

from snakepit_bridge._generated import worker_pb2


def cancel_when_running(worker, request_id: str) -> None:
    """Cancel races the call's arrival; retry until the worker reports it found the call."""
    cancel = worker.stub.Cancel
    wait_until(
        lambda: cancel(worker_pb2.CancelRequest(request_id=request_id), timeout=5).found,
        timeout_s=5,
    )


def in_flight(worker) -> int:
    return worker.stub.Ping(worker_pb2.PingRequest(), timeout=5).in_flight


@pytest.mark.parametrize(("adapter", "tool"), [(NUMERIC, "sleep"), (ECHO, "sleep_async")])
def test_cancel_stops_a_running_tool_with_a_cancelled_error(start_worker, adapter, tool):
    worker = start_worker(adapter)
    started = time.monotonic()
    future = worker.stub.Execute.future(request(tool, {"seconds": 30}, request_id="c1"), timeout=30)
    cancel_when_running(worker, "c1")
    response = future.result(timeout=5)
    assert time.monotonic() - started < 5
    assert response.error.kind == "cancelled"
    assert response.error.python_type == "ToolCancelled"
    assert response.request_id == "c1"


def test_cancel_of_an_unknown_request_reports_not_found(start_worker):
    worker = start_worker(NUMERIC)
    assert not worker.stub.Cancel(worker_pb2.CancelRequest(request_id="none"), timeout=5).found


@pytest.mark.parametrize(("adapter", "tool"), [(NUMERIC, "sleep"), (ECHO, "sleep_async")])
def test_a_passed_deadline_stops_the_tool_with_deadline_exceeded(start_worker, adapter, tool):
    worker = start_worker(adapter)
    deadline_unix_ms = int(time.time() * 1000) + 300
    started = time.monotonic()
    response = worker.execute(tool, args={"seconds": 30}, deadline_unix_ms=deadline_unix_ms)
    assert time.monotonic() - started < 3
    assert response.error.kind == "deadline_exceeded"
    assert response.error.python_type == "ToolDeadlineExceeded"


def test_a_call_arriving_after_its_deadline_never_runs(start_worker):
    worker = start_worker(ECHO)
    response = worker.execute("spawn_child", args={"seconds": 30}, deadline_unix_ms=1)
    assert response.error.kind == "deadline_exceeded"


def test_ping_answers_promptly_while_a_non_thread_safe_tool_runs(start_worker):
    worker = start_worker(NUMERIC)
    busy = worker.stub.Execute.future(request("sleep", {"seconds": 30}, request_id="busy"))
    wait_until(lambda: in_flight(worker) == 1, timeout_s=5)
    for nonce in range(5):
        started = time.monotonic()
        pong = worker.stub.Ping(worker_pb2.PingRequest(nonce=nonce), timeout=2)
        assert time.monotonic() - started < 0.5
        assert (pong.nonce, pong.in_flight) == (nonce, 1)
    assert worker.stub.Describe(worker_pb2.DescribeRequest(), timeout=2).tools
    cancel_when_running(worker, "busy")
    assert busy.result(timeout=5).error.kind == "cancelled"


def test_calls_to_a_non_thread_safe_adapter_run_one_at_a_time(start_worker):
    worker = start_worker(NUMERIC)
    first = worker.stub.Execute.future(request("sleep", {"seconds": 0.3}))
    wait_until(lambda: in_flight(worker) == 1, timeout_s=5)
    started = time.monotonic()
    second = worker.stub.Execute.future(request("sleep", {"seconds": 0.3}))
    assert first.result(timeout=5).WhichOneof("outcome") == "result"
    assert second.result(timeout=5).WhichOneof("outcome") == "result"
    assert time.monotonic() - started >= 0.45, "the second call waited for the first"


def test_a_thread_safe_adapter_runs_calls_concurrently(start_worker):
    worker = start_worker(ECHO, "--max-concurrency", "4")
    started = time.monotonic()
    calls = [
        worker.stub.Execute.future(request("sleep_async", {"seconds": 0.5})) for _ in range(4)
    ]
    assert all(c.result(timeout=5).WhichOneof("outcome") == "result" for c in calls)
    assert time.monotonic() - started < 1.5


def test_a_queued_call_cancelled_before_its_turn_never_runs(start_worker):
    worker = start_worker(NUMERIC)
    running = worker.stub.Execute.future(request("sleep", {"seconds": 30}, request_id="first"))
    queued = worker.stub.Execute.future(request("sleep", {"seconds": 30}, request_id="queued"))
    wait_until(lambda: in_flight(worker) == 2, timeout_s=5)
    cancel_when_running(worker, "queued")
    assert queued.result(timeout=5).error.kind == "cancelled"
    cancel_when_running(worker, "first")
    assert running.result(timeout=5).error.kind == "cancelled"


def test_calls_beyond_the_admission_limit_are_refused_as_worker_busy(start_worker):
    worker = start_worker(NUMERIC)
    held = [
        worker.stub.Execute.future(request("sleep", {"seconds": 30}, request_id=f"held{index}"))
        for index in range(3)
    ]
    wait_until(lambda: in_flight(worker) == 3, timeout_s=5)
    refused = worker.execute("add", args={"a": 1, "b": 2}, timeout_s=5).error
    assert refused.kind == "worker_busy"
    assert refused.retryable is True
    assert in_flight(worker) == 3, "Ping still has a thread"
    for index in range(3):
        cancel_when_running(worker, f"held{index}")
    assert all(call.result(timeout=5).error.kind == "cancelled" for call in held)


def test_a_duplicate_request_id_in_flight_is_refused(start_worker):
    worker = start_worker(NUMERIC)
    running = worker.stub.Execute.future(request("sleep", {"seconds": 30}, request_id="dup"))
    wait_until(lambda: in_flight(worker) == 1, timeout_s=5)
    error = worker.execute("add", args={"a": 1, "b": 2}, request_id="dup").error
    assert error.kind == "invalid_arguments"
    assert "already in flight" in error.message
    cancel_when_running(worker, "dup")
    running.result(timeout=5)


def test_a_client_that_abandons_its_call_cancels_the_tool(start_worker):
    worker = start_worker(NUMERIC)
    abandoned = worker.stub.Execute.future(request("sleep", {"seconds": 30}))
    wait_until(lambda: in_flight(worker) == 1, timeout_s=5)
    abandoned.cancel()
    wait_until(lambda: in_flight(worker) == 0, timeout_s=5)


def test_a_thread_safe_adapter_runs_at_most_max_concurrency_tools_at_once(start_worker):
    worker = start_worker(ECHO, "--max-concurrency", "2")
    started = time.monotonic()
    calls = [
        worker.stub.Execute.future(request("sleep_async", {"seconds": 0.4})) for _ in range(3)
    ]
    assert all(c.result(timeout=5).WhichOneof("outcome") == "result" for c in calls)
    assert time.monotonic() - started >= 0.75, "the third call waited for a free slot"
