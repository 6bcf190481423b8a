"""The worker process: `python -m snakepit_bridge.worker --socket PATH --adapter module:Class ...`.

Stdout is the protocol channel: one JSON line, either `{"event":"ready",...}` once the socket
serves, or `{"event":"startup_error",...}` before exit code 3; after readiness only bare
newlines follow (the fast lane's doorbell). Everything else (logs, a tool's print()) goes to stderr: file descriptor 1 itself is
pointed at stderr so that even child processes cannot write into the protocol channel.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import re
import select
import signal
import sys
import traceback
from concurrent import futures
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from snakepit_bridge._generated import worker_pb2_grpc
from snakepit_bridge import log_records
from snakepit_bridge.adapter import Adapter
from snakepit_bridge.process_hygiene import ProcessHygiene, flush_stdio
from snakepit_bridge.server import MAX_MESSAGE_BYTES, PROTOCOL_VERSION, WorkerIdentity
from snakepit_bridge.server import WorkerServicer
from snakepit_bridge.tensors import RegionBroker

EXIT_STARTUP_ERROR = 3
EXIT_USAGE = 2
EXIT_LANE_BROKEN = 70
GRACE_S = 2.0
# Safety-net timeout of the main thread's blocking wait (the signal wake-up pipe).
STOP_POLL_IDLE_S = 5.0
SPARE_THREADS = 4  # Ping, Describe, Cancel and health always find a thread.
FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024
SOCKET_PATH_BYTES_MAX = 107  # sun_path is 108 bytes on Linux, NUL included.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SERVICE_NAME = "snakepit.v1.Worker"
_ADAPTER_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

logger = logging.getLogger("snakepit_bridge.worker")


class StartupError(Exception):
    """A failure before readiness; `kind` is "import", "adapter", "bind" or "usage"."""

    def __init__(self, kind: str, error: BaseException) -> None:
        super().__init__(str(error))
        self.kind = kind
        self.error = error


class ProtocolChannel:
    """The private duplicate of the original stdout that carries the JSON protocol lines."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._fd = os.dup(1)  # Not inherited by children (PEP 446).
        try:
            os.dup2(2, 1)
        except OSError:
            # No usable stderr: stray output is dropped rather than let into the protocol.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)

    @property
    def fd(self) -> int:
        """The channel's descriptor; after readiness the fast lane writes bare newlines to it
        as the host's doorbell (the host skips empty lines)."""
        return self._fd

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n"
        data = line.encode("utf-8", errors="replace")
        while data:
            data = data[os.write(self._fd, data) :]


def main(argv: list[str] | None = None) -> NoReturn:
    log_records.install(sys.stderr, logging.INFO)  # JSON lines the host parses, with call ids.
    protocol = ProtocolChannel()
    try:
        options = _parse_arguments(argv)
    except StartupError as failure:
        _fail(protocol, failure, EXIT_USAGE)
    hygiene = ProcessHygiene(options.parent_pid)
    hygiene.arm()
    stop_signals: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Only append in the handler: taking a lock (Event.set) there can deadlock against
        # the interrupted main thread.
        signal.signal(signum, lambda received, _frame: stop_signals.append(received))
    # A signal also writes a byte here, which wakes the main thread's select at once: it can
    # block for long stretches instead of polling, so an idle worker burns no CPU.
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_read, False)
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write, warn_on_full_buffer=False)

    socket_path = os.path.abspath(options.socket)
    try:
        adapter = load_adapter(options.adapter)
        servicer = _build_servicer(adapter, options)
        log_records.correlate_calls(servicer)
        server, health_servicer = _serve(servicer, socket_path, options.max_concurrency)
        hygiene.socket_path = socket_path
    except StartupError as failure:
        _fail(protocol, failure, EXIT_STARTUP_ERROR)
    lane_server, lane_status = _start_lane(servicer, options, protocol)
    if not stop_signals:  # A host that asked us to stop while starting expects no readiness.
        _report_ready(protocol, options, socket_path, lane_status)
    while not stop_signals:
        select.select([wakeup_read], [], [], STOP_POLL_IDLE_S)
        with contextlib.suppress(BlockingIOError):
            os.read(wakeup_read, 512)
    logger.info("received signal %d", stop_signals[0])
    health_servicer.enter_graceful_shutdown()
    if lane_server is not None:
        lane_server.stop()
    _shut_down(server, servicer, adapter, socket_path)
    if hygiene.parent_gone():
        hygiene.kill_group()
    _terminate_own_children()
    flush_stdio()
    os._exit(0)  # Threads stuck in an uncancellable tool must not hold the exit hostage.


def _start_lane(
    servicer: WorkerServicer, options: argparse.Namespace, protocol: ProtocolChannel
) -> tuple[Any, str]:
    """Serves the host's fast lane when it named one: (server, "ok"), or (None, why not)."""
    if options.lane is None:
        return None, "off"
    try:
        from snakepit_bridge.lane import Lane
        from snakepit_bridge.lane_server import DEFAULT_SPIN_NS, LaneServer
        from snakepit_bridge.native import load

        lane = Lane(load(), options.lane, instance=options.instance)
    except Exception as error:  # noqa: BLE001 - the host decides: fall back or refuse
        logger.warning("fast lane unavailable: %s", error)
        return None, f"unavailable: {type(error).__name__}: {error}"
    spin_ns = DEFAULT_SPIN_NS if options.lane_spin_ns is None else max(0, options.lane_spin_ns)
    server = LaneServer(
        servicer, lane, protocol.fd, spin_ns=spin_ns, on_broken=_lane_broken
    )
    server.start()
    return server, "ok"


def _lane_broken(error: BaseException) -> None:
    # Shared memory that broke the protocol is never trusted again: exit, and the host's
    # supervisor replaces this worker (the stderr tail carries the reason).
    logger.error("fast lane protocol error, exiting for a restart: %s", error)
    flush_stdio()
    os._exit(EXIT_LANE_BROKEN)


def _report_ready(
    protocol: ProtocolChannel, options: argparse.Namespace, socket_path: str, lane_status: str
) -> None:
    protocol.emit(
        {
            "event": "ready",
            "pid": os.getpid(),
            "protocol_version": PROTOCOL_VERSION,
            "address": f"unix:{socket_path}",
            "worker_id": options.worker_id,
            "lane": lane_status,
        }
    )
    logger.info("worker %s serving %s on unix:%s", options.worker_id, options.adapter, socket_path)


def load_adapter(spec: str) -> Adapter:
    """Imports `module:Class`, instantiates it and runs its setup; raises StartupError."""
    if not _ADAPTER_SPEC.match(spec):
        error = ValueError(
            f"Adapter spec must be 'module:Class' (for example "
            f"'snakepit_bridge.examples.numeric:NumericAdapter'), got {spec!r}"
        )
        raise StartupError("adapter", error)
    module_name, _, attribute_path = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except BaseException as error:  # noqa: BLE001 - a module may even call sys.exit at import
        raise StartupError("import", error) from error
    try:
        for attribute in attribute_path.split("."):
            target = getattr(target, attribute)
        if not (isinstance(target, type) and issubclass(target, Adapter)):
            raise TypeError(
                f"{spec} is {type(target).__name__} {target!r}, not a subclass of "
                "snakepit_bridge.adapter.Adapter"
            )
        adapter = target()
        adapter.setup()
        return adapter
    except BaseException as error:  # noqa: BLE001 - any failure here is the adapter's
        raise StartupError("adapter", error) from error


def _region_broker(options: argparse.Namespace) -> RegionBroker:
    """The worker's shared-memory broker, from the environment the host set, built once."""
    try:
        return RegionBroker.from_env(options.instance)
    except ValueError as error:
        raise StartupError("usage", error) from error


def _build_servicer(adapter: Adapter, options: argparse.Namespace) -> WorkerServicer:
    identity = WorkerIdentity(
        run_id=options.run_id,
        instance=options.instance,
        worker_id=options.worker_id,
        adapter=options.adapter,
    )
    try:
        return WorkerServicer(
            adapter,
            identity,
            max_concurrency=options.max_concurrency,
            broker=_region_broker(options),
        )
    except StartupError:
        raise
    except Exception as error:  # Tool discovery failures (duplicate names) are the adapter's.
        raise StartupError("adapter", error) from error


def _serve(
    servicer: WorkerServicer, socket_path: str, max_concurrency: int
) -> tuple[grpc.Server, health.HealthServicer]:
    try:
        if len(os.fsencode(socket_path)) > SOCKET_PATH_BYTES_MAX:
            raise ValueError(
                f"Socket path is {len(os.fsencode(socket_path))} bytes, over the "
                f"{SOCKET_PATH_BYTES_MAX}-byte limit of unix sockets: {socket_path}"
            )
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=max_concurrency + SPARE_THREADS, thread_name_prefix="snakepit-rpc"
            ),
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                # Blob uploads (the chunked copy path) run at full speed from their first byte
                # instead of waiting for flow control to grow the window.
                ("grpc.http2.lookahead_bytes", FLOW_CONTROL_WINDOW_BYTES),
            ],
        )
        worker_pb2_grpc.add_WorkerServicer_to_server(servicer, server)
        health_servicer = health.HealthServicer()
        for service in ("", SERVICE_NAME):
            health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        server.add_insecure_port(f"unix:{socket_path}")
        server.start()
        os.chmod(socket_path, 0o600)
        return server, health_servicer
    except Exception as error:
        raise StartupError("bind", error) from error


def _shut_down(
    server: grpc.Server, servicer: WorkerServicer, adapter: Adapter, socket_path: str
) -> None:
    logger.info("stopping (grace %.1fs)", GRACE_S)
    servicer.close()  # Cancelled tools finish within the grace period when they cooperate.
    server.stop(GRACE_S).wait(GRACE_S + 1.0)
    servicer.broker.close()  # Result regions the host never adopted are released now.
    try:
        adapter.teardown()
    except Exception:
        logger.exception("adapter teardown failed")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)


def _terminate_own_children() -> None:
    # Processes a tool started live in our process group; a stopping worker leaves no orphans.
    if os.getpgrp() != os.getpid():
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(0, signal.SIGTERM)


def _fail(protocol: ProtocolChannel, failure: StartupError, exit_code: int) -> NoReturn:
    error = failure.error
    formatted = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    sys.stderr.write(formatted)
    protocol.emit(
        {
            "event": "startup_error",
            "kind": failure.kind,
            "python_type": type(error).__qualname__,
            "message": str(error),
            "traceback": formatted,
        }
    )
    flush_stdio()
    os._exit(exit_code)


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise StartupError("usage", ValueError(f"{self.prog}: {message}"))


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = _ArgumentParser(prog="python -m snakepit_bridge.worker", description=__doc__)
    parser.add_argument("--socket", required=True, help="unix socket path to serve on")
    parser.add_argument("--adapter", required=True, help="adapter as module:Class")
    parser.add_argument("--run-id", required=True, help="the host run this worker belongs to")
    parser.add_argument("--instance", required=True, help="the host instance name")
    parser.add_argument("--worker-id", required=True, help="this worker's id within the pool")
    parser.add_argument("--max-concurrency", type=_positive_int, default=1)
    parser.add_argument("--parent-pid", type=_positive_int, default=None)
    parser.add_argument("--lane", default=None, help="fast-lane region name the host created")
    parser.add_argument("--lane-spin-ns", type=int, default=None, help="fast-lane spin budget")
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


if __name__ == "__main__":
    main()
