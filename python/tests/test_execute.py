"""Execute over a real worker: value round-trips, encodings, sessions and every error kind."""

from __future__ import annotations

import json
import math

import msgpack
import pytest
from worker_harness import (
    ECHO,
    NUMERIC,
    socket_directory,  # noqa: F401 - fixture
    start_worker,  # noqa: F401 - fixture
    unpack,
)

from snakepit_bridge._generated import worker_pb2

ROUND_TRIP_VALUES = {
    "int64 max": 2**63 - 1,
    "int64 min": -(2**63),
    "near 2**63": 2**63 + 1,
    "uint64 max": 2**64 - 1,
    "zero": 0,
    "float": 0.1,
    "negative zero": -0.0,
    "infinity": math.inf,
    "negative infinity": -math.inf,
    "unicode": "héllo wörld ✓ 日本語",
    "emoji": "🐍👩‍💻🇺🇦",
    "nul inside": "a\x00b\x00",
    "empty string": "",
    "bytes": b"\x00\x01\xfe\xff",
    "empty bytes": b"",
    "nested with int keys": {1: "one", -2: {"deep": [1, 2, {3: None}]}, "s": [True, False]},
    "none": None,
    "list": [1, "two", 3.0, None, b"4", [5]],
    "empty containers": {"a": [], "b": {}},
}


@pytest.fixture
def echo_worker(start_worker):
    return start_worker(ECHO)


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES.values(), ids=ROUND_TRIP_VALUES.keys())
@pytest.mark.parametrize("tool", ["echo", "echo_async"])
def test_echo_round_trips_values_exactly_in_msgpack(echo_worker, tool, value):
    response = echo_worker.execute(tool, args={"value": value})
    assert response.WhichOneof("outcome") == "result", response.error
    assert response.result.encoding == worker_pb2.ENCODING_MSGPACK
    echoed = unpack(response.result.data)
    assert echoed == value
    assert type(echoed) is type(value)
    if isinstance(value, float):
        assert math.copysign(1.0, echoed) == math.copysign(1.0, value)


def test_echo_round_trips_nan(echo_worker):
    assert math.isnan(echo_worker.call("echo", value=math.nan))


def test_response_echoes_the_request_id_and_reports_timing(echo_worker):
    response = echo_worker.execute("echo", args={"value": 1}, request_id="req-42")
    assert response.request_id == "req-42"
    assert response.timing.decode_ns > 0
    assert response.timing.execute_ns > 0
    assert response.timing.encode_ns > 0


def test_json_arguments_get_a_json_result(start_worker):
    worker = start_worker(NUMERIC)
    response = worker.execute(
        "stats", args={"values": [1, 2, 3, 4]}, encoding=worker_pb2.ENCODING_JSON
    )
    assert response.result.encoding == worker_pb2.ENCODING_JSON
    assert json.loads(response.result.data) == {
        "mean": 2.5, "std": 1.118033988749895, "min": 1.0, "max": 4.0,
    }  # fmt: skip


def test_json_carries_nan_and_infinity(echo_worker):
    response = echo_worker.execute(
        "echo", args={"value": [math.inf, -math.inf]}, encoding=worker_pb2.ENCODING_JSON
    )
    assert json.loads(response.result.data) == [math.inf, -math.inf]
    assert b"Infinity" in response.result.data


def test_numpy_tools_return_plain_floats(start_worker):
    worker = start_worker(NUMERIC)
    assert worker.call("add", a=2, b=3) == 5
    stats = worker.call("stats", values=[2.0, 4.0])
    assert stats == {"mean": 3.0, "std": 1.0, "min": 2.0, "max": 4.0}
    trace = worker.call("matmul_trace", n=16, seed=7)
    assert isinstance(trace, float)
    assert worker.call("matmul_trace", n=16, seed=7) == trace


def test_session_state_persists_across_calls_with_the_same_session_id(echo_worker):
    def remember(session_id: str, value: object) -> object:
        response = echo_worker.execute(
            "remember", args={"key": "k", "value": value}, session_id=session_id
        )
        return unpack(response.result.data)

    assert remember("s1", "first") is None
    assert remember("s1", "second") == "first"
    assert remember("s2", "other") is None
    assert remember("", "x") is None
    assert remember("", "y") is None, "calls without a session share nothing"


def test_tool_context_carries_the_call_identity_and_trace_context(echo_worker):
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = echo_worker.execute(
        "whoami",
        session_id="session-9",
        metadata=worker_pb2.CallMetadata(correlation_id="corr-1", traceparent=traceparent),
    )
    assert unpack(response.result.data) == {
        "pid": echo_worker.process.pid,
        "worker_id": "w0",
        "session_id": "session-9",
        "correlation_id": "corr-1",
        "traceparent": traceparent,
    }


def test_unknown_tool_is_an_unknown_tool_error_naming_the_available_tools(start_worker):
    worker = start_worker(NUMERIC)
    error = worker.execute("ad").error
    assert error.kind == "unknown_tool"
    assert error.python_type == "UnknownToolError"
    assert "Unknown tool 'ad'" in error.message
    assert "add, arange, count, fail, matmul_trace" in error.message
    assert "add" in error.suggestion
    assert error.retryable is False
    assert list(error.frames) == [], "the bridge's own dispatch frames are not shown"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"a": 1}, "missing a required argument: 'b'"),
        ({"a": 1, "b": 2, "c": 3}, "got an unexpected keyword argument 'c'"),
        ({"a": 1, "b": 2, "ctx": 3}, "got an unexpected keyword argument 'ctx'"),
    ],
)
def test_arguments_that_do_not_bind_are_invalid_arguments(start_worker, arguments, expected):
    error = start_worker(NUMERIC).execute("add", args=arguments).error
    assert error.kind == "invalid_arguments"
    assert error.message == f"Cannot call tool 'add'(a: float, b: float) -> float: {expected}"


def test_arguments_that_are_not_a_map_are_invalid_arguments(start_worker):
    error = start_worker(NUMERIC).execute("add", args=[1, 2]).error
    assert error.kind == "invalid_arguments"
    assert "must be a map of parameter name to value, got list" in error.message


def test_undecodable_arguments_are_a_serialization_error(start_worker):
    error = start_worker(NUMERIC).execute("add", raw_args=b"\xc1").error
    assert error.kind == "serialization"
    assert "Cannot decode msgpack payload of 1 bytes" in error.message


def test_a_raised_value_error_carries_frames_source_and_cause_chain(start_worker):
    error = start_worker(NUMERIC).execute("fail", args={"message": "boom"}).error
    assert error.kind == "python"
    assert (error.python_type, error.python_module) == ("ValueError", "builtins")
    assert error.message == "boom"
    innermost = error.frames[-1]
    assert innermost.file.endswith("snakepit_bridge/examples/numeric.py")
    assert innermost.function == "fail"
    assert innermost.source == "raise ValueError(message) from error"
    assert all("snakepit_bridge/server.py" not in frame.file for frame in error.frames)
    assert len(error.causes) == 1
    cause = error.causes[0]
    assert (cause.relation, cause.python_type, cause.message) == ("cause", "KeyError", "'missing'")
    assert cause.frames[-1].source == '{}["missing"]'


def test_an_async_tools_error_shows_its_own_frames_not_the_futures_that_carried_it(echo_worker):
    error = echo_worker.execute("fail_async", args={"message": "async boom"}).error
    assert (error.kind, error.python_type, error.message) == ("python", "ValueError", "async boom")
    assert [(frame.function, frame.source) for frame in error.frames] == [
        ("fail_async", "raise ValueError(message)")
    ]


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("arange", {"n": 3}, "Cannot encode numpy.ndarray (shape (3,), dtype int64)"),
        ("arange", {"n": 3}, "return arr.tolist() for small arrays"),
        ("power", {"base": 2, "exponent": 70}, "Cannot encode integer of 71 bits"),
        ("power", {"base": 2, "exponent": 64}, "msgpack carries integers from -2**63 to 2**64-1"),
        ("power", {"base": -2, "exponent": 65}, "below -2**63"),
    ],
)
def test_unencodable_results_are_serialization_errors(start_worker, tool, arguments, expected):
    error = start_worker(NUMERIC).execute(tool, args=arguments).error
    assert error.kind == "serialization"
    assert error.python_type == "SerializationError"
    assert expected in error.message


def test_results_at_the_64_bit_limits_still_encode(start_worker):
    worker = start_worker(NUMERIC)
    assert worker.call("power", base=2, exponent=63) == 2**63
    assert worker.call("power", base=-2, exponent=63) == -(2**63)


def test_a_generator_tool_called_with_execute_returns_its_items_as_a_list(start_worker):
    assert start_worker(NUMERIC).call("count", n=4) == [0, 1, 2, 3]


def test_arrow_ipc_arguments_are_refused_until_supported(start_worker):
    error = start_worker(NUMERIC).execute(
        "add", raw_args=b"", encoding=worker_pb2.ENCODING_ARROW_IPC
    ).error
    assert error.kind == "serialization"
    assert "arrow_ipc is not supported" in error.message


def test_empty_argument_payload_means_no_arguments(echo_worker):
    response = echo_worker.stub.Execute(
        worker_pb2.ExecuteRequest(request_id="r", tool="noop"), timeout=5
    )
    assert response.WhichOneof("outcome") == "result"
    assert msgpack.unpackb(response.result.data) is None


def test_a_request_without_id_is_still_served(echo_worker):
    response = echo_worker.stub.Execute(worker_pb2.ExecuteRequest(tool="noop"), timeout=5)
    assert response.WhichOneof("outcome") == "result"
    assert response.request_id == ""
