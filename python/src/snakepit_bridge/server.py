"""`WorkerServicer`: the gRPC face of one adapter (Ping, Describe, Execute, ExecuteStream, Cancel,
and PutBlob / GetBlob for the chunked copy path).

Every failure of a call becomes an `ErrorPayload` in the response; no exception escapes as a
gRPC status, so the host has one error path (a refused blob upload or download is a status).
Ping, Describe and Cancel never wait for a tool slot, so they answer while tools run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from snakepit_bridge.blobs import BlobError
from snakepit_bridge._generated import worker_pb2, worker_pb2_grpc
from snakepit_bridge.adapter import Adapter, Tool, discover_tools
from snakepit_bridge.context import REASON_CANCELLED, SessionStore, ToolContext
from snakepit_bridge._server_support import (
    Admission,
    ToolSlots,
    encode_result,
    native_abi_version,
    prepare_arguments,
    rss_bytes,
    safe_payload,
    tool_spec,
)
from snakepit_bridge._lean_execute import LEAN_CALL, LeanCall, execute_lean, no_arguments
from snakepit_bridge.async_runner import AsyncRunner
from snakepit_bridge.tool_runs import ToolRuns
from snakepit_bridge.tensor_call import CallRegions
from snakepit_bridge.tensors import RegionBroker
from snakepit_bridge.errors import (
    InvalidArgumentsError,
    WorkerBusyError,
)

PROTOCOL_VERSION = 1
# The largest message gRPC carries (the copy path of tensors); bulk data belongs in shared memory.
MAX_MESSAGE_BYTES = 2**31 - 1
# Tool RPCs admitted beyond max_concurrency wait for a tool slot; past that they are refused
# (worker_busy) so they never take the server threads that Ping and Cancel need.
QUEUED_CALLS_MAX = 2

logger = logging.getLogger("snakepit_bridge.server")


@dataclass(frozen=True)
class WorkerIdentity:
    run_id: str = ""
    instance: str = ""
    worker_id: str = ""
    adapter: str = ""


class WorkerServicer(worker_pb2_grpc.WorkerServicer):
    def __init__(
        self,
        adapter: Adapter,
        identity: WorkerIdentity,
        *,
        max_concurrency: int = 1,
        broker: RegionBroker | None = None,
    ) -> None:
        """`broker` carries tensors in shared memory; without one, tensors are refused."""
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._adapter = adapter
        self._identity = identity
        self._broker = (
            broker if broker is not None else RegionBroker.disabled("no region broker given")
        )
        self._tools = discover_tools(adapter)
        # Tools that may run without a context (sync, not streaming, no `ctx`): one dict lookup
        # on the hot path instead of four attribute checks.
        self._lean_tools = {
            name: tool
            for name, tool in self._tools.items()
            if not (tool.is_async or tool.streaming or tool.accepts_context)
        }
        self._thread_safe = bool(adapter.thread_safe)
        self._max_concurrency = max_concurrency if self._thread_safe else 1
        self._admitted_max = self._max_concurrency + QUEUED_CALLS_MAX
        self._tool_slots = ToolSlots(self._max_concurrency)
        self._calls: dict[str, ToolContext | LeanCall] = {}
        self._calls_lock = threading.Lock()
        self._calls_served = 0
        self._sessions = SessionStore()
        self._runner = AsyncRunner()
        self._tool_runs = ToolRuns(self._runner)
        self._started_monotonic_ns = time.monotonic_ns()
        self._native_abi_version: int | None = None
        # The call the fast lane runs on its lean path (no ToolContext), for Ping and Cancel.
        self.lane_call: str | None = None
        self._lane_calls_served = 0

    @property
    def broker(self) -> RegionBroker:
        """The worker's shared-memory state (one per worker)."""
        return self._broker

    @property
    def max_concurrency(self) -> int:
        return self._max_concurrency

    def lean_tool(self, name: str) -> Tool | None:
        """The tool `name` when it can run without a context: sync, not streaming, no `ctx`."""
        return self._lean_tools.get(name)

    def lean_tools(self) -> dict[str, Tool]:
        """Every tool `lean_tool` finds, by name."""
        return dict(self._lean_tools)

    def lane_call_done(self) -> None:
        self.lane_call = None
        self._lane_calls_served += 1

    def lane_calls_done(self, count: int) -> None:
        """Counts `count` calls the C lean loop ran (it sets and clears `lane_call` itself)."""
        self._lane_calls_served += count

    @property
    def tools(self) -> dict[str, Tool]:
        return dict(self._tools)

    def close(self) -> None:
        """Cancels every call still running and stops the async loop."""
        with self._calls_lock:
            running = list(self._calls.values())
        for ctx in running:
            ctx.cancel(REASON_CANCELLED)
        self._runner.stop()

    # --- RPCs -----------------------------------------------------------------------------

    def Ping(self, request: worker_pb2.PingRequest, context: Any) -> worker_pb2.PingResponse:
        with self._calls_lock:
            in_flight, served = len(self._calls), self._calls_served
        in_flight += self.lane_call is not None
        served += self._lane_calls_served
        return worker_pb2.PingResponse(
            nonce=request.nonce,
            pid=os.getpid(),
            rss_bytes=rss_bytes(),
            uptime_ms=(time.monotonic_ns() - self._started_monotonic_ns) // 1_000_000,
            in_flight=in_flight,
            calls_served=served,
        )

    def Describe(self, request: Any, context: Any) -> worker_pb2.DescribeResponse:
        identity = self._identity
        return worker_pb2.DescribeResponse(
            worker=worker_pb2.WorkerInfo(
                pid=os.getpid(),
                run_id=identity.run_id,
                instance=identity.instance,
                worker_id=identity.worker_id,
                adapter=identity.adapter,
                python_version=sys.version.split()[0],
            ),
            tools=[tool_spec(self._tools[name]) for name in sorted(self._tools)],
            capabilities=worker_pb2.Capabilities(
                protocol_version=PROTOCOL_VERSION,
                encodings=[worker_pb2.ENCODING_MSGPACK, worker_pb2.ENCODING_JSON],
                zero_copy=self._broker.enabled,
                max_message_bytes=MAX_MESSAGE_BYTES,
                max_concurrency=self._max_concurrency,
                thread_safe=self._thread_safe,
                native_abi_version=self._native_abi(),
            ),
        )

    def Cancel(self, request: worker_pb2.CancelRequest, context: Any) -> worker_pb2.CancelResponse:
        with self._calls_lock:
            ctx = self._calls.get(request.request_id)
        if ctx is not None:
            ctx.cancel(REASON_CANCELLED)
        # A lean lane call has no context to cancel, but it is running: report it found, so
        # the host applies its grace-then-kill rule.
        found = ctx is not None or (request.request_id != "" and request.request_id == self.lane_call)
        if request.request_id:
            # Blobs uploaded for a call that will not run (or not claimed by one that does).
            self._broker.blobs.discard_call(request.request_id)
        return worker_pb2.CancelResponse(found=found)

    def PutBlob(
        self, chunks: Iterator[worker_pb2.BlobChunk], context: Any
    ) -> worker_pb2.BlobAck:
        """Stores a blob that a coming call names (``blobs``: the chunked copy path)."""
        try:
            blob_id, size = self._broker.blobs.receive(chunks)
        except BlobError as error:
            context.abort(getattr(grpc.StatusCode, error.status), str(error))
        return worker_pb2.BlobAck(blob_id=blob_id, bytes=size)

    def GetBlob(
        self, request: worker_pb2.BlobRequest, context: Any
    ) -> Iterator[worker_pb2.BlobChunk]:
        """Streams a part of a blob that a result named; the last part frees it."""
        try:
            pieces = self._broker.blobs.send(request.blob_id, request.offset, request.length)
        except BlobError as error:
            context.abort(getattr(grpc.StatusCode, error.status), str(error))
        for piece in pieces:
            yield worker_pb2.BlobChunk(data=piece)

    def Execute(
        self, request: worker_pb2.ExecuteRequest, context: Any
    ) -> worker_pb2.ExecuteResponse:
        lean_tried = False
        args = request.args
        if no_arguments(args.data, args.encoding):
            # No arguments: no regions to open, unless the result needs them (made then).
            lean_tried = True
            response = execute_lean(self, request, context, None)
            if response is not None:
                self._broker.sweep_if_due()
                return response
        regions = self._broker.call(request.request_id)
        try:
            response = None if lean_tried else execute_lean(self, request, context, regions)
            return response if response is not None else self._execute(request, context, regions)
        finally:
            # After _execute returned: the arguments and result it held are gone, so the
            # argument regions usually close at once.
            regions.close()

    def _execute(
        self, request: worker_pb2.ExecuteRequest, context: Any, regions: CallRegions
    ) -> worker_pb2.ExecuteResponse:
        # The response is filled in place: building a Payload and a Timing apart and passing
        # them to the constructor copies each, a few microseconds on every call.
        response = worker_pb2.ExecuteResponse(request_id=request.request_id)
        timing = response.timing
        try:
            with self._admitted(request, context) as ctx:
                ctx.regions = regions
                tool, arguments, encoding = prepare_arguments(self._tools, request, ctx, timing)
                self._tool_slots.take(ctx)
                started = time.perf_counter_ns()
                try:
                    if tool.streaming:
                        result: Any = list(self._tool_runs.items(tool, arguments, ctx))
                    elif tool.is_async:
                        result = self._tool_runs.invoke(tool, arguments, ctx)
                    else:
                        result = tool.function(**arguments)
                finally:
                    timing.execute_ns = time.perf_counter_ns() - started
                    self._tool_slots.give()
                started = time.perf_counter_ns()
                data = encode_result(result, encoding, regions)
                timing.encode_ns = time.perf_counter_ns() - started
                payload = response.result
                payload.encoding = encoding
                payload.data = data
                return response
        except BaseException as exc:  # noqa: BLE001 - every failure is reported as data
            response.error.CopyFrom(safe_payload(exc))
            return response

    def ExecuteStream(
        self, request: worker_pb2.ExecuteRequest, context: Any
    ) -> Iterator[worker_pb2.StreamChunk]:
        regions = self._broker.call(request.request_id)
        try:
            yield from self._execute_stream(request, context, regions)
        finally:
            regions.close()  # Also when the host stops reading and the stream is closed.

    def _execute_stream(
        self, request: worker_pb2.ExecuteRequest, context: Any, regions: CallRegions
    ) -> Iterator[worker_pb2.StreamChunk]:
        timing = worker_pb2.Timing()
        request_id = request.request_id
        sequence = 0
        try:
            with self._admitted(request, context) as ctx:
                ctx.regions = regions
                tool, arguments, encoding = prepare_arguments(self._tools, request, ctx, timing)
                # The generator is closed inside the tool turn: its cleanup is tool code too.
                with self._tool_slots.turn(ctx), contextlib.closing(
                    self._tool_runs.items(tool, arguments, ctx)
                ) as items:
                    for value in items:
                        started = time.perf_counter_ns()
                        data = encode_result(value, encoding, regions)
                        del value  # An item's arrays must not keep its regions mapped.
                        timing.encode_ns += time.perf_counter_ns() - started
                        payload = worker_pb2.Payload(encoding=encoding, data=data)
                        yield worker_pb2.StreamChunk(
                            request_id=request_id, sequence=sequence, item=payload
                        )
                        sequence += 1
                        if not context.is_active():
                            # The host went away: stop the producer rather than compute items
                            # nobody will read.
                            ctx.cancel(REASON_CANCELLED)
                            return
                end = worker_pb2.StreamEnd(items=sequence, timing=timing)
                yield worker_pb2.StreamChunk(request_id=request_id, sequence=sequence, end=end)
        except BaseException as exc:  # noqa: BLE001 - every failure is reported as data
            if isinstance(exc, GeneratorExit):
                raise
            yield worker_pb2.StreamChunk(
                request_id=request_id, sequence=sequence, error=safe_payload(exc)
            )

    # --- call machinery --------------------------------------------------------------------

    def _admitted(self, request: worker_pb2.ExecuteRequest, context: Any) -> Admission:
        """Registers the call (for Cancel and Ping) for exactly as long as it runs.

        Its signature is fixed: `log_records.correlate_calls` wraps it."""
        request_id = request.request_id or uuid.uuid4().hex
        metadata = request.metadata
        session_id = request.session_id
        ctx = ToolContext(
            request_id=request_id,
            tool=request.tool,
            session_id=session_id,
            correlation_id=metadata.correlation_id,
            traceparent=metadata.traceparent,
            tracestate=metadata.tracestate,
            deadline_unix_ms=request.deadline_unix_ms,
            worker_id=self._identity.worker_id,
            session=self._sessions.get(session_id),
        )
        with self._calls_lock:
            if request_id in self._calls:
                raise InvalidArgumentsError(f"request_id {request_id!r} is already in flight")
            if len(self._calls) >= self._admitted_max:
                raise WorkerBusyError(
                    f"Worker is busy: {len(self._calls)} calls in flight, at most "
                    f"{self._admitted_max} admitted (max_concurrency {self._max_concurrency})",
                    suggestion="Retry on another worker or after a running call completes",
                )
            self._calls[request_id] = ctx
        # The RPC ending for any reason (client cancel, gRPC deadline) ends the call; after a
        # normal completion the callback finds nothing left to stop.
        if not context.add_callback(ctx.cancel):
            ctx.cancel(REASON_CANCELLED)
        return Admission(self, ctx)

    def _discharge(self, request_id: str) -> None:
        with self._calls_lock:
            del self._calls[request_id]
            self._calls_served += 1

    def admit_lean(self, request_id: str, session_id: str) -> bool:
        """Registers a lean call and takes its tool slot, when it can start at once."""
        if session_id:
            self._sessions.get(session_id)  # Keeps the session fresh, as a general call does.
        with self._calls_lock:
            calls = self._calls
            if request_id in calls or len(calls) >= self._admitted_max:
                return False
            if not self._tool_slots.try_take():
                return False  # It would queue: the general path waits, cancellable.
            calls[request_id] = LEAN_CALL
        return True

    def discharge_lean(self, request_id: str, *, ran: bool) -> None:
        """Gives back a lean call's tool slot and unregisters it."""
        self._tool_slots.give()
        with self._calls_lock:
            del self._calls[request_id]
            self._calls_served += ran

    def _native_abi(self) -> int:
        if self._native_abi_version is None:
            self._native_abi_version = native_abi_version()
        return self._native_abi_version
