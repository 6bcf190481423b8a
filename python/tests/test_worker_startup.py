"""Worker start-up: the readiness line, Describe, and every way a start can fail."""

from __future__ import annotations

import json
import os
import select
import stat

from grpc_health.v1 import health_pb2, health_pb2_grpc
from worker_harness import (
    ECHO,
    NUMERIC,
    socket_directory,  # noqa: F401 - fixture
    start_worker,  # noqa: F401 - fixture
    worker_command,
)

from snakepit_bridge._generated import worker_pb2


def test_worker_prints_one_ready_line_with_pid_protocol_address_and_worker_id(start_worker):
    worker = start_worker(NUMERIC)
    event = worker.event
    assert event == {
        "event": "ready",
        "pid": worker.process.pid,
        "protocol_version": 1,
        "address": f"unix:{worker.socket_path}",
        "worker_id": "w0",
        "lane": "off",
    }
    assert worker.first_line.endswith(b"}\n")
    assert b" " not in worker.first_line.strip()


def test_worker_socket_is_private_to_its_owner(start_worker):
    worker = start_worker(NUMERIC)
    assert worker.event["event"] == "ready"
    mode = os.stat(worker.socket_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_worker_runs_in_its_own_session_and_process_group(start_worker):
    worker = start_worker(NUMERIC)
    assert worker.event["event"] == "ready"
    assert os.getpgid(worker.process.pid) == worker.process.pid
    assert os.getsid(worker.process.pid) == worker.process.pid


def test_worker_answers_ping_with_nonce_pid_and_counters(start_worker):
    worker = start_worker(NUMERIC)
    pong = worker.stub.Ping(worker_pb2.PingRequest(nonce=2**64 - 1), timeout=5)
    assert pong.nonce == 2**64 - 1
    assert pong.pid == worker.process.pid
    assert pong.rss_bytes > 1_000_000
    assert pong.in_flight == 0
    assert pong.calls_served == 0
    worker.call("add", a=1, b=2)
    assert worker.stub.Ping(worker_pb2.PingRequest(), timeout=5).calls_served == 1


def test_worker_serves_standard_health_for_the_server_and_the_worker_service(start_worker):
    worker = start_worker(NUMERIC)
    health = health_pb2_grpc.HealthStub(worker.channel)
    for service in ("", "snakepit.v1.Worker"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_describe_lists_tools_with_docstrings_signatures_and_streaming_flags(start_worker):
    worker = start_worker(NUMERIC, "--parent-pid", str(os.getpid()))
    described = worker.stub.Describe(worker_pb2.DescribeRequest(), timeout=5)
    tools = {spec.name: spec for spec in described.tools}
    assert {"add", "stats", "matmul_trace", "count", "fail", "sleep"} <= set(tools)

    assert tools["add"].doc == "Adds two numbers (ints stay ints)."
    assert tools["add"].signature == "(a: float, b: float) -> float"
    assert tools["add"].returns == "float"
    assert not tools["add"].streaming and not tools["add"].is_async

    seed = tools["matmul_trace"].parameters[1]
    assert (seed.name, seed.kind, seed.annotation, seed.required, seed.default_repr) == (
        "seed", "positional_or_keyword", "int", False, "0",
    )  # fmt: skip
    assert tools["matmul_trace"].parameters[0].required

    assert tools["count"].streaming
    assert tools["sleep"].signature == "(seconds: float) -> float", "ctx is not the host's"
    assert [p.name for p in tools["sleep"].parameters] == ["seconds"]


def test_describe_reports_worker_identity_and_capabilities(start_worker):
    worker = start_worker(NUMERIC)
    described = worker.stub.Describe(worker_pb2.DescribeRequest(), timeout=5)
    assert described.worker.pid == worker.process.pid
    assert described.worker.run_id == "run-test"
    assert described.worker.instance == "pytest"
    assert described.worker.worker_id == "w0"
    assert described.worker.adapter == NUMERIC
    assert described.worker.python_version.count(".") == 2
    capabilities = described.capabilities
    assert capabilities.protocol_version == 1
    assert list(capabilities.encodings) == [worker_pb2.ENCODING_MSGPACK, worker_pb2.ENCODING_JSON]
    assert capabilities.zero_copy is False
    assert capabilities.max_message_bytes == 2**31 - 1
    assert capabilities.max_concurrency == 1
    assert capabilities.thread_safe is False
    assert capabilities.native_abi_version >= 0


def test_describe_of_a_thread_safe_adapter_reports_its_concurrency_and_async_tools(start_worker):
    worker = start_worker(ECHO, "--max-concurrency", "4")
    described = worker.stub.Describe(worker_pb2.DescribeRequest(), timeout=5)
    assert described.capabilities.thread_safe is True
    assert described.capabilities.max_concurrency == 4
    tools = {spec.name: spec for spec in described.tools}
    assert tools["echo_async"].is_async and not tools["echo_async"].streaming
    assert tools["count_async"].is_async and tools["count_async"].streaming
    assert all(spec.doc for spec in described.tools), "every example tool has a docstring"


def assert_startup_error(worker, kind: str, exit_code: int = 3) -> dict:
    assert worker.wait_exit() == exit_code
    event = json.loads(worker.first_line)
    assert set(event) == {"event", "kind", "python_type", "message", "traceback"}
    assert event["event"] == "startup_error"
    assert event["kind"] == kind
    remainder = worker.process.stdout.read()
    assert remainder == b"", "stdout carries exactly one protocol line"
    return event


def test_unimportable_adapter_module_exits_3_with_an_import_startup_error(start_worker):
    worker = start_worker("no_such_module_anywhere:Adapter")
    event = assert_startup_error(worker, "import")
    assert event["python_type"] == "ModuleNotFoundError"
    assert "no_such_module_anywhere" in event["message"]
    assert event["traceback"].startswith("Traceback (most recent call last):")
    assert "ModuleNotFoundError" in worker.stderr(), "the traceback also goes to stderr"


def test_module_failing_at_import_reports_the_raising_line_in_its_traceback(start_worker):
    worker = start_worker("broken_at_import:Anything")
    event = assert_startup_error(worker, "import")
    assert event["python_type"] == "RuntimeError"
    assert "libfoo.so missing" in event["message"]
    assert "broken_at_import.py" in event["traceback"]
    assert 'raise RuntimeError("this module cannot be imported' in event["traceback"]


def test_missing_adapter_class_is_an_adapter_startup_error(start_worker):
    event = assert_startup_error(start_worker("snakepit_bridge.examples.numeric:Nope"), "adapter")
    assert event["python_type"] == "AttributeError"
    assert "Nope" in event["message"]


def test_class_that_is_not_an_adapter_is_refused(start_worker):
    event = assert_startup_error(start_worker("broken_adapters:NotAnAdapter"), "adapter")
    assert event["python_type"] == "TypeError"
    assert "not a subclass of snakepit_bridge.adapter.Adapter" in event["message"]


def test_adapter_failing_in_init_or_setup_is_an_adapter_startup_error(start_worker):
    init = assert_startup_error(start_worker("broken_adapters:FailingInitAdapter"), "adapter")
    assert (init["python_type"], init["message"]) == ("ValueError", "bad configuration")
    setup = assert_startup_error(start_worker("broken_adapters:FailingSetupAdapter"), "adapter")
    assert setup["python_type"] == "RuntimeError"
    assert ", in setup\n" in setup["traceback"]


def test_adapter_with_two_tools_of_one_name_is_refused(start_worker):
    event = assert_startup_error(start_worker("broken_adapters:DuplicateToolAdapter"), "adapter")
    assert "defines tool 'same' twice" in event["message"]


def test_malformed_adapter_spec_names_the_expected_format(start_worker):
    for spec in ("snakepit_bridge.examples.numeric.NumericAdapter", "a:b:c", ":Class", "mod:"):
        event = assert_startup_error(start_worker(spec), "adapter")
        assert "'module:Class'" in event["message"]
        assert repr(spec) in event["message"]


def test_socket_path_beyond_the_unix_limit_is_a_bind_startup_error(start_worker, socket_directory):
    long_path = str(socket_directory / ("s" * 120 + ".sock"))
    worker = start_worker(argv=worker_command(long_path, NUMERIC, "w-long"))
    event = assert_startup_error(worker, "bind")
    assert "107-byte limit" in event["message"]


def test_usage_errors_exit_2_with_a_usage_startup_error(start_worker, socket_directory):
    socket_path = str(socket_directory / "u.sock")
    command = worker_command(socket_path, NUMERIC, "w", "--max-concurrency", "0")
    event = assert_startup_error(start_worker(argv=command), "usage", exit_code=2)
    assert "--max-concurrency" in event["message"]


def test_a_tools_print_goes_to_stderr_not_into_the_protocol_channel(start_worker):
    worker = start_worker(ECHO)
    assert worker.event["event"] == "ready"
    worker.call("shout", text="hello from a tool")
    # The print was flushed before the call returned, so nothing can still be on its way.
    readable, _, _ = select.select([worker.process.stdout], [], [], 0)
    assert readable == []
    assert "hello from a tool" in worker.stderr()
