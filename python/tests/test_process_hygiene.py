"""Process hygiene: graceful stop, exit codes, and no orphans when the host dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import grpc
import pytest
from worker_harness import (
    ECHO,
    NUMERIC,
    kill_group_and_wait,
    process_gone,
    read_line,
    request,
    socket_directory,  # noqa: F401 - fixture
    start_worker,  # noqa: F401 - fixture
    unpack,
    wait_until,
    worker_command,
    worker_environment,
)

from snakepit_bridge._generated import worker_pb2, worker_pb2_grpc

# Stands in for the TypeScript host: starts the worker, then idles until killed.
INTERMEDIATE_PARENT = """
import os, subprocess, sys, time
extra = ["--parent-pid", str(os.getpid())] if sys.argv[1] == "with-parent-pid" else []
subprocess.Popen(sys.argv[2:] + extra)
time.sleep(3600)
"""


def test_sigterm_stops_the_worker_gracefully_with_exit_code_0(start_worker):
    worker = start_worker(NUMERIC)
    assert worker.event["event"] == "ready"
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait_exit(timeout_s=10) == 0
    assert not os.path.exists(worker.socket_path), "the socket file is removed"


def test_sigterm_takes_the_children_a_tool_started_along(start_worker):
    worker = start_worker(ECHO)
    child_pid = worker.call("spawn_child", seconds=60)
    assert not process_gone(child_pid)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait_exit(timeout_s=10) == 0
    wait_until(lambda: process_gone(child_pid), timeout_s=2)


def test_sigterm_while_a_tool_runs_cancels_it_and_still_exits_0(start_worker):
    worker = start_worker(NUMERIC)
    # Held in a variable: a dropped gRPC future cancels its call.
    running = worker.stub.Execute.future(request("sleep", {"seconds": 60}))
    wait_until(lambda: worker.stub.Ping(worker_pb2.PingRequest(), timeout=5).in_flight, 5)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait_exit(timeout_s=5) == 0
    del running


def test_stopping_runs_the_adapters_setup_and_teardown_once_each(start_worker, tmp_path):
    record = tmp_path / "lifecycle.txt"
    worker = start_worker(
        "lifecycle_adapters:RecordingAdapter", env={"SNAKEPIT_TEST_LIFECYCLE_FILE": str(record)}
    )
    assert worker.call("ping") == "pong"
    assert record.read_text() == "setup\n"
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait_exit() == 0
    assert record.read_text() == "setup\nteardown\n"


def test_a_tool_calling_os_exit_ends_the_worker_with_that_code(start_worker):
    worker = start_worker(ECHO)
    call = worker.stub.Execute.future(request("crash", {"code": 7}))  # Held: see above.
    assert worker.wait_exit() == 7
    del call


def test_a_tool_sending_sigkill_to_its_worker_ends_it_by_that_signal(start_worker):
    worker = start_worker(ECHO)
    call = worker.stub.Execute.future(request("kill_self", {"signal": int(signal.SIGKILL)}))
    assert worker.wait_exit() == -signal.SIGKILL
    del call


@pytest.mark.parametrize("mode", ["with-parent-pid", "without-parent-pid"])
def test_worker_and_its_children_die_within_2s_of_the_parent_dying(socket_directory, mode):
    socket_path = str(socket_directory / "orphan.sock")
    command = worker_command(socket_path, ECHO, "orphan")
    parent = subprocess.Popen(
        [sys.executable, "-c", INTERMEDIATE_PARENT, mode, *command],
        stdout=subprocess.PIPE,
        env=worker_environment(),
        start_new_session=True,
    )
    worker_pid = child_pid = None
    try:
        ready = json.loads(read_line(parent.stdout.fileno(), 20))
        assert ready["event"] == "ready"
        worker_pid = ready["pid"]
        with grpc.insecure_channel(ready["address"]) as channel:
            response = worker_pb2_grpc.WorkerStub(channel).Execute(
                request("spawn_child", {"seconds": 60}), timeout=10
            )
        child_pid = unpack(response.result.data)
        assert not process_gone(worker_pid) and not process_gone(child_pid)

        parent.kill()
        parent.wait(timeout=5)
        wait_until(lambda: process_gone(worker_pid) and process_gone(child_pid), timeout_s=2)
    finally:
        for pid in (parent.pid, worker_pid, child_pid):
            if pid is not None:
                kill_group_and_wait(pid)
        parent.wait(timeout=5)
        parent.stdout.close()
