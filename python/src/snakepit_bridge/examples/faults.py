"""`FaultsAdapter`: tools that fail, each in one recognisable way, for real.

The error-path tests and the errors guide call these: numpy shape and dtype errors raised by
numpy itself, a real `MemoryError` from an allocation no machine can satisfy, the messages torch
writes for CUDA out-of-memory and device problems (torch itself is not needed), an import of a
missing module, secrets in messages, deep cause chains, notes, and tools that kill their own
worker a set number of times (retry tests).

Thread-safe: every tool is independent of the others.
"""

from __future__ import annotations

import ctypes
import os
import signal as signals
import threading
from pathlib import Path

import numpy as np

from snakepit_bridge.adapter import Adapter, tool

CUDA_OOM_MESSAGE = (
    "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total capacity; "
    "12.10 GiB already allocated; 1.02 GiB free; 13.00 GiB reserved in total by PyTorch) "
    "If reserved memory is >> allocated memory try setting max_split_size_mb to avoid "
    "fragmentation."
)
DEVICE_MISMATCH_MESSAGE = (
    "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and "
    "cpu! (when checking argument for argument mat2 in method wrapper_CUDA_mm)"
)


class OutOfMemoryError(RuntimeError):
    """Stands in for `torch.cuda.OutOfMemoryError` (same module and name) where torch is absent."""


OutOfMemoryError.__module__ = "torch.cuda"


class FaultsAdapter(Adapter):
    thread_safe = True

    @tool
    def value_error(self, message: str) -> None:
        """Raises ValueError(message) from a KeyError: the classic cause chain."""
        try:
            {}["missing"]
        except KeyError as error:
            raise ValueError(message) from error

    @tool
    def dot_shapes(self) -> float:
        """np.dot of a (2, 3) and a (4, 5) matrix: numpy's "shapes not aligned" ValueError."""
        return float(np.dot(np.ones((2, 3)), np.ones((4, 5))).sum())

    @tool
    def broadcast_shapes(self) -> float:
        """(2, 3) + (4, 5): numpy's "could not be broadcast together" ValueError."""
        return float((np.ones((2, 3)) + np.ones((4, 5))).sum())

    @tool
    def reshape(self, size: int, rows: int, columns: int) -> list[int]:
        """np.arange(size).reshape(rows, columns); fails when the sizes disagree."""
        return [int(value) for value in np.arange(size).reshape(rows, columns).ravel()]

    @tool
    def dtype_cast(self) -> list[int]:
        """Adds 1.5 into an int64 array in place: numpy's UFuncTypeError (a casting error)."""
        values = np.ones(3, dtype=np.int64)
        np.add(values, 1.5, out=values)
        return values.tolist()

    @tool
    def torch_dtype_message(self) -> None:
        """Raises the RuntimeError torch raises for mixed dtypes (message classification)."""
        raise RuntimeError("expected scalar type Float but found Double")

    @tool
    def cuda_oom_message(self) -> None:
        """Raises the RuntimeError message of a CUDA out-of-memory (message classification)."""
        raise RuntimeError(CUDA_OOM_MESSAGE)

    @tool
    def cuda_oom_typed(self) -> None:
        """Raises a class named like torch.cuda.OutOfMemoryError (type classification)."""
        raise OutOfMemoryError(CUDA_OOM_MESSAGE)

    @tool
    def host_oom(self) -> int:
        """Asks numpy for 2**53 bytes: a real MemoryError from the allocator."""
        return int(np.empty(2**50, dtype=np.float64).nbytes)

    @tool
    def memory_error(self) -> None:
        """Raises a bare MemoryError, as an allocation in pure Python would."""
        raise MemoryError()

    @tool
    def device_mismatch(self) -> None:
        """Raises torch's message for tensors on two devices."""
        raise RuntimeError(DEVICE_MISMATCH_MESSAGE)

    @tool
    def device_unavailable(self) -> None:
        """Raises torch's message for CUDA on a machine without it (an AssertionError)."""
        raise AssertionError("Torch not compiled with CUDA enabled")

    @tool
    def import_missing(self) -> None:
        """Imports a module that does not exist."""
        import snakepit_no_such_module  # noqa: F401

    @tool
    def leak_secret(self) -> None:
        """Fails with secrets in its message, source line, notes, cause and locals."""
        api_key = "sk-live-0123456789abcdefghijklmnop"  # noqa: F841 - a local the payload omits
        try:
            raise ConnectionError("connect to postgres://app:hunter2@db.internal:5432/main failed")
        except ConnectionError as error:
            failure = RuntimeError("login refused: password=hunter2 token=tok_9f8e7d6c5b4a")
            failure.add_note("retried with Authorization: Bearer eyJhbGciOi.payload.signature")
            raise failure from error

    @tool
    def deep_chain(self, depth: int) -> None:
        """Raises ValueError("level 0") caused by RuntimeError("level 1") ... ("level depth-1")."""
        if depth <= 1:
            raise ValueError("level 0")
        try:
            _raise_chain(1, depth)
        except RuntimeError as error:
            raise ValueError("level 0") from error

    @tool
    def with_notes(self, notes: list[str]) -> None:
        """Raises a KeyError carrying `notes` as __notes__."""
        error = KeyError("shard-7")
        for note in notes:
            error.add_note(note)
        raise error

    @tool
    def kill_times(self, marker: str, times: int, signal: int = 9) -> int:
        """Kills its own worker with `signal` on the first `times` calls, counted in file `marker`.

        Returns the number of the call that survived (times + 1), so a retried call shows how
        many attempts it took.
        """
        path = Path(marker)
        calls = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(calls))
        if calls <= times:
            _die(signal)
        return calls

    @tool
    def kill_self(self, signal: int = 9) -> None:
        """Kills its own worker with `signal` (9 SIGKILL, 11 SIGSEGV, 6 SIGABRT), every time."""
        _die(signal)

    @tool
    def segfault(self) -> None:
        """Reads address 0 through ctypes: a real segmentation fault, as a native bug makes."""
        ctypes.string_at(0)

    @tool
    def abort(self) -> None:
        """Calls abort(3), as a failed C assertion does."""
        os.abort()

    @tool
    def pid(self) -> int:
        """The worker's pid."""
        return os.getpid()

    @tool
    def corrupt_lane(self, kind: str) -> str:
        """Publishes a broken frame on this worker's fast lane (see LaneServer.inject_fault):
        the host must refuse it with a typed error and replace the worker."""
        from snakepit_bridge.lane_server import active_server

        server = active_server()
        if server is None:
            raise RuntimeError("this worker serves no fast lane (transport is gRPC)")
        server.inject_fault(kind)
        return kind


def _die(signal: int) -> None:
    # Sent to this thread, not to the process: a process-directed SIGSEGV or SIGABRT may be
    # taken by another thread, and this one could return (and answer) before the process dies.
    signals.pthread_kill(threading.get_ident(), signals.Signals(signal))
    raise RuntimeError(f"signal {signal} did not end the worker")


def _raise_chain(level: int, depth: int) -> None:
    if level >= depth - 1:
        raise RuntimeError(f"level {level}")
    try:
        _raise_chain(level + 1, depth)
    except RuntimeError as error:
        raise RuntimeError(f"level {level}") from error
