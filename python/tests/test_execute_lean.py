"""The lean path of Execute: plain sync tools skip the per-call context, and nothing the host
can observe changes (Cancel, Ping, slots, deadlines, log ids, timing, errors, fallbacks)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import msgpack
import pytest
from snakepit_bridge import log_records
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge._lean_execute import LEAN_CALL, execute_lean
from snakepit_bridge.adapter import Adapter, tool
from snakepit_bridge.context import ToolContext
from snakepit_bridge.server import WorkerIdentity, WorkerServicer

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class LeanAdapter(Adapter):
    thread_safe = True

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.log_ids: list[Any] = []

    @tool
    def add(self, a: int, b: int) -> int:
        return a + b

    @tool
    def hold(self) -> str:
        self.started.set()
        self.release.wait(5)
        return "released"

    @tool
    def fail(self) -> None:
        raise ValueError("plain tool failed")

    @tool
    def logged(self) -> None:
        self.log_ids.append(log_records.current_call())
        logging.getLogger("lean-test").info("inside")

    @tool
    def ones(self) -> Any:
        import numpy as np

        return np.ones(4, dtype=np.float32)

    @tool
    def listing(self) -> list[str]:
        return ["a", "b"]

    @tool
    def with_context(self, ctx: ToolContext) -> str:
        return ctx.request_id

    @tool
    async def later(self) -> int:
        return 1


class RpcContext:
    """The little of grpc.ServicerContext that Execute uses."""

    def __init__(self, active: bool = True) -> None:
        self.active = active
        self.callbacks: list[Any] = []

    def is_active(self) -> bool:
        return self.active

    def add_callback(self, callback: Any) -> bool:
        if not self.active:
            return False
        self.callbacks.append(callback)
        return True


def execute_request(tool_name: str, args: Any = None, **fields: Any) -> worker_pb2.ExecuteRequest:
    data = msgpack.packb(args if args is not None else {}, use_bin_type=True)
    return worker_pb2.ExecuteRequest(
        request_id=fields.pop("request_id", "req-1"),
        tool=tool_name,
        args=worker_pb2.Payload(encoding=worker_pb2.ENCODING_MSGPACK, data=data),
        **fields,
    )


@pytest.fixture
def adapter() -> LeanAdapter:
    return LeanAdapter()


@pytest.fixture
def servicer(adapter: LeanAdapter):
    servicer = WorkerServicer(adapter, WorkerIdentity(worker_id="w0"), max_concurrency=1)
    yield servicer
    adapter.release.set()
    servicer.close()


def lean(servicer: WorkerServicer, request: worker_pb2.ExecuteRequest, context: Any = None):
    regions = servicer.broker.call(request.request_id)
    try:
        return execute_lean(servicer, request, context or RpcContext(), regions)
    finally:
        regions.close()


def test_a_plain_sync_tool_runs_on_the_lean_path_with_its_timing(servicer):
    response = lean(servicer, execute_request("add", {"a": 2, "b": 3}))
    assert response is not None
    assert msgpack.unpackb(response.result.data) == 5
    assert response.request_id == "req-1"
    assert response.timing.execute_ns > 0
    assert response.timing.decode_ns > 0


def test_the_lean_path_leaves_no_callback_on_the_rpc(servicer):
    context = RpcContext()
    assert lean(servicer, execute_request("add", {"a": 1, "b": 1}), context) is not None
    assert context.callbacks == []


@pytest.mark.parametrize("tool_name", ["with_context", "later", "missing"])
def test_tools_with_a_context_async_tools_and_unknown_tools_take_the_general_path(
    servicer, tool_name
):
    assert lean(servicer, execute_request(tool_name)) is None


@pytest.mark.parametrize(
    "args", [{"a": 1}, {"a": 1, "b": 2, "c": 3}, {1: 2}], ids=["missing", "extra", "int key"]
)
def test_arguments_that_do_not_fit_take_the_general_path_which_reports_them(servicer, args):
    request = execute_request("add", args)
    assert lean(servicer, request) is None
    response = servicer.Execute(request, RpcContext())
    assert response.error.kind == "invalid_arguments"


def test_a_call_past_its_deadline_never_starts_and_reports_deadline_exceeded(servicer):
    request = execute_request("add", {"a": 1, "b": 1}, deadline_unix_ms=int(time.time() * 1000) - 1)
    assert lean(servicer, request) is None
    assert servicer.Execute(request, RpcContext()).error.kind == "deadline_exceeded"


def test_a_cancelled_rpc_never_starts_the_tool_and_leaves_nothing_registered(servicer):
    request = execute_request("add", {"a": 1, "b": 1})
    assert lean(servicer, request, RpcContext(active=False)) is None
    ping = servicer.Ping(worker_pb2.PingRequest(), None)
    assert (ping.in_flight, ping.calls_served) == (0, 0)
    assert servicer.Execute(request, RpcContext(active=False)).error.kind == "cancelled"


def test_a_running_lean_call_is_found_by_cancel_counted_by_ping_and_holds_its_slot(
    servicer, adapter
):
    outcome: list[Any] = []
    running = threading.Thread(
        target=lambda: outcome.append(servicer.Execute(execute_request("hold"), RpcContext()))
    )
    running.start()
    assert adapter.started.wait(5)
    assert servicer.Ping(worker_pb2.PingRequest(), None).in_flight == 1
    found = servicer.Cancel(worker_pb2.CancelRequest(request_id="req-1"), None).found
    assert found, "Cancel finds a lean call while it runs"
    # The only slot is taken: another plain call queues on the general path instead.
    assert lean(servicer, execute_request("add", {"a": 1, "b": 1}, request_id="req-2")) is None
    duplicate = servicer.Execute(execute_request("add", {"a": 1, "b": 1}), RpcContext())
    assert "already in flight" in duplicate.error.message
    adapter.release.set()
    running.join(5)
    assert msgpack.unpackb(outcome[0].result.data) == "released"
    ping = servicer.Ping(worker_pb2.PingRequest(), None)
    assert (ping.in_flight, ping.calls_served) == (0, 1), "a refused duplicate is not served"
    assert not servicer.Cancel(worker_pb2.CancelRequest(request_id="req-1"), None).found


def test_a_tool_error_on_the_lean_path_is_the_general_paths_error_payload(servicer):
    response = lean(servicer, execute_request("fail"))
    assert response is not None
    assert response.error.python_type == "ValueError"
    assert response.error.message == "plain tool failed"
    assert all("snakepit_bridge/" not in frame.file for frame in response.error.frames)
    assert servicer.Ping(worker_pb2.PingRequest(), None).in_flight == 0


def test_log_records_of_a_lean_call_carry_its_correlation_id_and_traceparent(servicer, adapter):
    metadata = worker_pb2.CallMetadata(correlation_id="corr-7", traceparent=TRACEPARENT)
    assert lean(servicer, execute_request("logged", metadata=metadata)) is not None
    assert adapter.log_ids == [("corr-7", TRACEPARENT)]
    assert log_records.current_call() is None


def test_closing_the_servicer_passes_over_a_lean_call_entry(servicer):
    assert LEAN_CALL.cancel("cancelled") is False, "a lean call has nothing to cancel"
    servicer._calls["stuck"] = LEAN_CALL
    servicer.close()


@pytest.mark.parametrize("data", [b"", b"\x80"])
def test_a_call_without_arguments_makes_regions_only_for_a_result_that_needs_them(servicer, data):
    def request(tool_name: str) -> worker_pb2.ExecuteRequest:
        return worker_pb2.ExecuteRequest(
            request_id=f"no-args-{tool_name}",
            tool=tool_name,
            args=worker_pb2.Payload(encoding=worker_pb2.ENCODING_MSGPACK, data=data),
        )

    # Through Execute itself: the lean path with no regions up front.
    listing = servicer.Execute(request("listing"), RpcContext())
    assert listing.WhichOneof("outcome") == "result"
    assert msgpack.unpackb(listing.result.data) == ["a", "b"]
    # A result that needs regions gets them (this servicer has no shared memory: the codec's
    # own refusal, as on the general path; tests/zero_copy.test.ts sends one through a pool).
    array = servicer.Execute(request("ones"), RpcContext())
    assert array.WhichOneof("outcome") == "error"
    assert "arrays cross only in a call from a Snakepit pool" in array.error.message
    assert servicer.Ping(worker_pb2.PingRequest(), None).in_flight == 0
