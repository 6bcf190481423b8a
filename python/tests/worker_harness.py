"""Test harness: start real worker processes and always take them (and their children) down.

A plain module rather than conftest.py so that other suites in this directory keep their own
conftest; test modules import the fixtures they use by name.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import msgpack
import pytest

from snakepit_bridge._generated import worker_pb2, worker_pb2_grpc

TESTS_DIRECTORY = Path(__file__).resolve().parent
NUMERIC = "snakepit_bridge.examples.numeric:NumericAdapter"
ECHO = "snakepit_bridge.examples.echo:EchoAdapter"
READY_TIMEOUT_S = 20.0
GONE_TIMEOUT_S = 5.0


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.01) -> Any:
    """Polls `predicate` until it returns something truthy; fails the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {predicate}")
        time.sleep(interval_s)


def process_state(pid: int) -> str | None:
    """The /proc state letter of `pid`, or None when no such process exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def process_gone(pid: int) -> bool:
    # A zombie has finished running; only its parent's wait() is missing, and after a parent's
    # death the reaper is init, which these tests do not control.
    return process_state(pid) in (None, "Z")


def live_members_of_group(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry))
    return members


def read_line(fd: int, timeout_s: float) -> bytes:
    """One line from a pipe, or what arrived before EOF or the timeout."""
    deadline = time.monotonic() + timeout_s
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
    return buffer


def kill_group_and_wait(pid: int) -> None:
    """SIGKILLs the process group that `pid` leads (only if it leads one) and awaits its end."""
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        leads_group = False
    if leads_group and pid != os.getpgrp():
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_until(lambda: not live_members_of_group(pid), GONE_TIMEOUT_S)
    else:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_until(lambda: process_gone(pid), GONE_TIMEOUT_S)


class Worker:
    """A worker process under test, its stdout protocol line and a gRPC stub to it."""

    def __init__(self, process: subprocess.Popen[bytes], socket_path: str, stderr_path: Path):
        self.process = process
        self.socket_path = socket_path
        self.stderr_path = stderr_path
        if process.stdout is None:
            raise AssertionError("worker stdout must be a pipe")
        self.first_line = read_line(process.stdout.fileno(), READY_TIMEOUT_S)
        self._channel: grpc.Channel | None = None

    @property
    def event(self) -> dict[str, Any]:
        if not self.first_line:
            raise AssertionError(f"worker printed nothing; stderr:\n{self.stderr()}")
        return json.loads(self.first_line)

    @property
    def stub(self) -> worker_pb2_grpc.WorkerStub:
        if self._channel is None:
            if self.event.get("event") != "ready":
                raise AssertionError(f"worker is not ready: {self.first_line!r}\n{self.stderr()}")
            self._channel = grpc.insecure_channel(f"unix:{self.socket_path}")
        return worker_pb2_grpc.WorkerStub(self._channel)

    @property
    def channel(self) -> grpc.Channel:
        self.stub  # noqa: B018 - opens the channel
        if self._channel is None:
            raise AssertionError("channel did not open")
        return self._channel

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def execute(
        self, tool: str, timeout_s: float = 10.0, **request_fields: Any
    ) -> worker_pb2.ExecuteResponse:
        return self.stub.Execute(request(tool, **request_fields), timeout=timeout_s)

    def call(self, tool: str, **arguments: Any) -> Any:
        """Executes with msgpack arguments; returns the decoded result or fails with the error."""
        response = self.execute(tool, args=arguments)
        if response.WhichOneof("outcome") != "result":
            raise AssertionError(f"{tool} failed: {response.error}")
        return msgpack.unpackb(response.result.data, raw=False, strict_map_key=False)

    def wait_exit(self, timeout_s: float = 10.0) -> int:
        return self.process.wait(timeout=timeout_s)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        kill_group_and_wait(self.process.pid)
        self.process.wait(timeout=GONE_TIMEOUT_S)
        if self.process.stdout is not None:
            self.process.stdout.close()


def request(
    tool: str,
    args: Any = None,
    *,
    request_id: str = "",
    encoding: int = worker_pb2.ENCODING_MSGPACK,
    raw_args: bytes | None = None,
    **fields: Any,
) -> worker_pb2.ExecuteRequest:
    if raw_args is not None:
        data = raw_args
    elif encoding == worker_pb2.ENCODING_JSON:
        data = json.dumps(args if args is not None else {}).encode()
    else:
        data = msgpack.packb(args if args is not None else {}, use_bin_type=True)
    return worker_pb2.ExecuteRequest(
        request_id=request_id or f"req-{time.monotonic_ns()}",
        tool=tool,
        args=worker_pb2.Payload(encoding=encoding, data=data),
        **fields,
    )


@pytest.fixture
def socket_directory() -> Iterator[Path]:
    # Not tmp_path: pytest's paths can exceed the 107-byte limit of unix socket paths.
    directory = Path(tempfile.mkdtemp(prefix="sp-", dir="/tmp"))
    directory.chmod(0o700)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def start_worker(
    socket_directory: Path, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """Starts workers; every one of them (with its process group) is killed at teardown."""
    started: list[Worker] = []

    def start(
        adapter: str = NUMERIC,
        *extra: str,
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> Worker:
        index = len(started)
        socket_path = str(socket_directory / f"w{index}.sock")
        stderr_path = tmp_path / f"worker{index}.stderr"
        command = argv or worker_command(socket_path, adapter, f"w{index}", *extra)
        environment = {**worker_environment(), **(env or {})}
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, env=environment
            )
        worker = Worker(process, socket_path, stderr_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()


def worker_command(socket_path: str, adapter: str, worker_id: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "snakepit_bridge.worker",
        "--socket", socket_path,
        "--adapter", adapter,
        "--run-id", "run-test",
        "--instance", "pytest",
        "--worker-id", worker_id,
        *extra,
    ]  # fmt: skip


def worker_environment() -> dict[str, str]:
    # The tests directory holds the deliberately broken adapters.
    environment = dict(os.environ)
    paths = [str(TESTS_DIRECTORY), environment.get("PYTHONPATH", "")]
    environment["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return environment


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)
