"""`LaneServer`: serves the servicer's calls over the fast lane, beside its gRPC server.

One reader thread takes frames off the request ring. A call runs on that thread when nothing
else is running and the adapter runs one call at a time (no thread hand-off: the cheapest
path); otherwise, and for every stream, it runs on a pool thread so that the reader keeps
reading (cancels, stream credits, more calls). Plain sync tools without `ctx` take a lean path;
everything else goes through the servicer's `Execute` / `ExecuteStream`, so both transports
share one implementation of sessions, deadlines, cancellation, async tools and errors.

Waiting: spin for up to `spin_ns` (less while spins keep failing, see `AdaptiveSpin`), then
park on the request head's futex (the GIL is released).
Replies go out through a `ResponseWriter` (lane_writer.py).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack

from snakepit_bridge import lane_native
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.lane import (
    FRAME_SPILL,
    NO_FLAG,
    OFF_REQ_HEAD,
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
    RESP_STREAM_ERROR,
    U32_MASK,
    Lane,
    LaneProtocolError,
    decode_frame,
)
from snakepit_bridge.lane_lean import LeanCalls
from snakepit_bridge.lane_rpc import RpcContext, execute_request
from snakepit_bridge.lane_spin import AdaptiveSpin
from snakepit_bridge.lane_writer import ResponseWriter
from snakepit_bridge.server import WorkerServicer

logger = logging.getLogger("snakepit_bridge.lane")

# Spin budget before parking, both for a new request and for response-ring space. Measured in
# bench/fast_lane.ts: a sequential caller's next request arrives within ~15-30 us of a reply.
DEFAULT_SPIN_NS = 50_000
# A parked reader returns to Python this often (stop() ends its wait at once by moving the word
# it waits on); an idle worker does nothing else.
PARK_TIMEOUT_NS = 2_000_000_000
# A call started closer than this to its queue deadline is counted with a seq_cst store.
STARTED_FENCE_MARGIN_MS = 50.0


_active: LaneServer | None = None


def active_server() -> LaneServer | None:
    """The lane this worker serves, if any (for diagnostics and fault-injection tests)."""
    return _active


class LaneServer:
    """Serves one lane until `stop()`; a protocol error stops it and calls `on_broken`."""

    def __init__(
        self,
        servicer: WorkerServicer,
        lane: Lane,
        doorbell_fd: int,
        *,
        spin_ns: int = DEFAULT_SPIN_NS,
        on_broken: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._servicer = servicer
        self._lane = lane
        self._spin_ns = spin_ns
        self._on_broken = on_broken
        self._stopping = False
        self._writer = ResponseWriter(lane, doorbell_fd, spin_ns, PARK_TIMEOUT_NS)
        self._send = self._writer.send
        self._reader_out = lane.out_word()  # The reader thread's native out-word.
        self._contexts: dict[str, RpcContext] = {}
        self._contexts_lock = threading.Lock()
        # Ids cancelled before their call frame was read (bounded: oldest forgotten first).
        self._cancelled_early: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=servicer.max_concurrency + 1, thread_name_prefix="snakepit-lane"
        )
        self._pool_busy = 0
        self._pool_lock = threading.Lock()
        self._inline_ok = servicer.max_concurrency == 1
        self._packb = msgpack.Packer(use_bin_type=True).pack
        lean_calls = LeanCalls(servicer, self._writer)
        self._lean_call = lean_calls.run
        # The C lean loop (None: not built or switched off), sharing the Python path's errors.
        self._native = lane_native.lean_loop(
            servicer, lane, self._writer, doorbell_fd, lean_calls.send_error, self._cancelled_early
        )
        self._thread = threading.Thread(target=self._run, name="snakepit-lane-reader", daemon=True)

    def start(self) -> None:
        global _active
        _active = self
        self._thread.start()

    def inject_fault(self, kind: str) -> None:
        """Publishes one broken response frame (see `ResponseWriter.inject_fault`)."""
        self._writer.inject_fault(kind)

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stops reading and cancels what runs; a parked reader ends at once. The caller closes
        the lane afterwards (the worker's exit unmaps it in any case)."""
        self._stopping = True
        self._writer.stopping = True
        # A futex wake alone does not end a wait whose word is unchanged: move the request head
        # (the lane is dead from here on, so the host's counter no longer matters).
        lane = self._lane
        lane.publish(OFF_REQ_HEAD, lane.load(OFF_REQ_HEAD) ^ 0x8000_0000, NO_FLAG, lane.out_word())
        lane.wake(OFF_REQ_HEAD)
        with self._contexts_lock:
            running = list(self._contexts.values())
        for context in running:
            context.cancel()
        self._thread.join(timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._writer.close()

    # --- reading ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as error:  # noqa: BLE001 - a broken lane ends the worker's service
            if self._stopping:
                return
            logger.error("fast lane broken: %s", error)
            if self._on_broken is not None:
                self._on_broken(error)

    def _serve(self) -> None:
        lane = self._lane
        requests = lane.requests
        consumed = lane.load(OFF_REQ_TAIL)
        out = self._reader_out
        spin = AdaptiveSpin(self._spin_ns)
        clock = time.perf_counter_ns
        native = self._native if self._inline_ok else None
        servicer = self._servicer
        broker = servicer.broker
        while not self._stopping:
            budget = spin.budget_ns
            started = clock()
            head = lane.wait(OFF_REQ_HEAD, consumed, OFF_REQ_PARKED, budget, PARK_TIMEOUT_NS, out)
            spin.record(clock() - started < budget)
            if self._stopping:
                return
            if head is None or head == consumed:
                continue
            if (head - consumed) & U32_MASK > lane.slot_count:
                raise LaneProtocolError(
                    f"request head {head} is more than {lane.slot_count} frames past {consumed}"
                )
            if native is not None and self._pool_busy == 0:
                # Inline calls only, as `_start` runs them. (A call cancelled before it was read
                # is left to Python, which drops it: the loop sees `_cancelled_early`.)
                consumed, served = native.serve(consumed, head)
                if served:
                    servicer.lane_calls_done(served)
                    broker.sweep_if_due()
                if consumed == head:
                    continue
            frames = []
            while consumed != head:
                frames.append((consumed, self._frame(requests.read(consumed), consumed)))
                consumed = (consumed + 1) & U32_MASK
            lane.publish(OFF_REQ_TAIL, consumed, NO_FLAG, out)
            calls = [(index, frame) for index, frame in frames if not self._control(frame)]
            for index, frame in calls:
                self._start(index, frame)

    def _frame(self, data: bytes, index: int) -> list[Any]:
        frame = decode_frame(data, index)
        if frame[0] == FRAME_SPILL:
            if len(frame) != 3:
                raise LaneProtocolError(f"frame {index}: bad spill frame {frame!r:.80}")
            frame = decode_frame(self._lane.read_spill(frame[1], frame[2]), index)
        return frame

    def _control(self, frame: list[Any]) -> bool:
        """Handles cancel and credit frames, in ring order; True when `frame` was one.

        A stream's context is registered here, before any later frame of the same batch (its
        credit, its cancel) is looked at.
        """
        kind = frame[0]
        if kind == REQ_CALL:
            if len(frame) != 11 or not isinstance(frame[1], str) or not isinstance(frame[2], str):
                raise LaneProtocolError(f"bad call frame {frame!r:.120}")
            if frame[9]:
                with self._contexts_lock:
                    self._contexts[frame[1]] = RpcContext()
            return False
        if kind == REQ_CANCEL and len(frame) == 2:
            self._cancel(str(frame[1]))
            return True
        if kind == REQ_CREDIT and len(frame) == 3 and isinstance(frame[2], int):
            with self._contexts_lock:
                context = self._contexts.get(str(frame[1]))
            if context is not None:
                context.grant(frame[2])
            return True
        raise LaneProtocolError(f"unknown request frame {frame!r:.120}")

    def _cancel(self, request_id: str) -> None:
        with self._contexts_lock:
            context = self._contexts.get(request_id)
            if context is None:
                self._cancelled_early[request_id] = None
                while len(self._cancelled_early) > 4096:
                    self._cancelled_early.popitem(last=False)
        if context is not None:
            context.cancel()
        self._servicer.Cancel(worker_pb2.CancelRequest(request_id=request_id), None)

    def _start(self, index: int, frame: list[Any]) -> None:
        """Starts (or drops) the call of request frame `index`, then counts it as started: the
        host re-queues the calls a dead worker never started."""
        request_id = frame[1]
        stream = bool(frame[9])
        queue_deadline = frame[10]
        # Counted started before the deadline is read: a host that found the call unstarted at
        # its queue deadline reads the clock after this check does. Near the deadline that
        # takes a seq_cst store (a native call); well before it a plain store is long visible
        # by the time the host looks.
        now_ms = time.time() * 1000
        if queue_deadline and queue_deadline - now_ms < STARTED_FENCE_MARGIN_MS:
            self._lane.publish(OFF_REQ_STARTED, index + 1, NO_FLAG, self._reader_out)
            now_ms = time.time() * 1000
        else:
            self._lane.store(OFF_REQ_STARTED, index + 1)
        if queue_deadline and queue_deadline <= now_ms:
            with self._contexts_lock:
                self._cancelled_early.pop(request_id, None)
                if stream:
                    self._contexts.pop(request_id, None)
            self._send(self._packb([RESP_EXPIRED, request_id]))
            return
        # Only this (the reader) thread writes `_cancelled_early`, so an empty one needs no lock.
        if stream or self._cancelled_early:
            with self._contexts_lock:
                if request_id in self._cancelled_early:
                    # Aborted before it was read: it never runs, and the host expects no reply.
                    del self._cancelled_early[request_id]
                    return
                if stream and not self._contexts[request_id].is_active():
                    del self._contexts[request_id]
                    return
        # Only this thread raises `_pool_busy` (pool threads lower it), so a 0 read here without
        # the lock is current: no pooled call is running.
        if self._inline_ok and not stream and self._pool_busy == 0:
            self._call(frame, lean=True)
            return
        with self._pool_lock:
            self._pool_busy += 1
        self._pool.submit(self._pooled, frame, stream)

    def _pooled(self, frame: list[Any], stream: bool) -> None:
        try:
            self._stream(frame) if stream else self._call(frame, lean=False)
        except BaseException as error:  # noqa: BLE001
            if not self._stopping:
                logger.error("fast lane call failed outside the tool: %s", error)
                if self._on_broken is not None:
                    self._on_broken(error)
        finally:
            with self._pool_lock:
                self._pool_busy -= 1

    # --- running calls ----------------------------------------------------------------------

    def _call(self, frame: list[Any], *, lean: bool) -> None:
        """Runs a call; the lean path only on the reader thread (its counters are unlocked)."""
        _, request_id, tool_name, _args, _encoding, _session, deadline, _corr, _tp, _, _ = frame
        tool = self._servicer.lean_tool(tool_name) if lean else None
        if tool is not None and (not deadline or deadline > time.time() * 1000):
            if self._lean_call(tool, frame):
                return
        context = RpcContext()
        with self._contexts_lock:
            self._contexts[request_id] = context
        try:
            response = self._servicer.Execute(execute_request(frame), context)
        finally:
            with self._contexts_lock:
                self._contexts.pop(request_id, None)
        if response.WhichOneof("outcome") == "error":
            self._send(self._packb([RESP_ERROR, request_id, response.SerializeToString()]))
            return
        timing = response.timing
        result = response.result
        self._writer.send_result(
            request_id,
            result.data,
            result.encoding,
            timing.decode_ns,
            timing.execute_ns,
            timing.encode_ns,
        )

    def _stream(self, frame: list[Any]) -> None:
        request_id = frame[1]
        with self._contexts_lock:
            context = self._contexts[request_id]
        chunks = self._servicer.ExecuteStream(execute_request(frame), context)
        try:
            for chunk in chunks:
                if not context.is_active():
                    return  # Cancelled: like a cancelled RPC, it sends nothing more.
                body = chunk.WhichOneof("body")
                if body == "item":
                    if not context.take_credit():
                        return  # Cancelled: closing the generator stops the tool.
                    item = chunk.item
                    reply = [RESP_ITEM, request_id, item.data, item.encoding, chunk.sequence]
                elif body == "end":
                    reply = [RESP_END, request_id, chunk.end.items]
                else:
                    reply = [RESP_STREAM_ERROR, request_id, chunk.SerializeToString()]
                self._send(self._packb(reply))
        finally:
            chunks.close()
            with self._contexts_lock:
                self._contexts.pop(request_id, None)
