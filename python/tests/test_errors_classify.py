"""Classification: the exception's class first, its message only as a fallback; details and
suggestions for every recognised kind."""

from __future__ import annotations

import sys
import types

import msgpack
import numpy as np
import pytest

from snakepit_bridge import error_messages
from snakepit_bridge.error_classify import classify_exception
from snakepit_bridge.errors import classify, error_payload
from snakepit_bridge.examples.faults import CUDA_OOM_MESSAGE, DEVICE_MISMATCH_MESSAGE, FaultsAdapter

NEW_CUDA_OOM_MESSAGE = (
    "CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 79.15 GiB of "
    "which 5.56 MiB is free. Process 1234 has 79.13 GiB memory in use."
)


def raised(function, *args):
    try:
        function(*args)
    except BaseException as error:  # noqa: BLE001 - the tests want whatever was raised
        return error
    raise AssertionError("nothing was raised")


def details(exc: BaseException) -> dict:
    payload = error_payload(exc)
    return msgpack.unpackb(payload.details) if payload.details else {}


FAULTS = FaultsAdapter()


def test_a_numpy_dot_of_unaligned_shapes_is_a_shape_mismatch_with_both_shapes():
    error = raised(FAULTS.dot_shapes)
    assert type(error) is ValueError
    assert classify(error) == "shape_mismatch"
    assert details(error) == {"operation": "dot", "expected": [2, 3], "got": [4, 5], "dimension": 1}
    assert error_payload(error).suggestion == (
        "Check the input shapes (expected a shape compatible with (2, 3), got (4, 5); dimension 1 "
        "differs); reshape, transpose or slice the input to match"
    )


def test_a_numpy_broadcast_error_names_the_first_dimension_that_cannot_broadcast():
    error = raised(FAULTS.broadcast_shapes)
    assert details(error) == {
        "operation": "broadcast",
        "expected": [2, 3],
        "got": [4, 5],
        "dimension": 1,
    }
    wide = raised(lambda: np.ones((7, 4, 3)) + np.ones((2, 3)))
    assert details(wide)["dimension"] == 1


def test_a_failed_reshape_reports_the_target_shape_and_the_size_it_got():
    error = raised(FAULTS.reshape, 3, 2, 2)
    assert details(error) == {
        "operation": "reshape",
        "expected": [2, 2],
        "got": None,
        "dimension": None,
        "got_size": 3,
    }
    assert error_payload(error).suggestion == (
        "Check the input shapes (the target shape is (2, 2)); reshape, transpose or slice the "
        "input to match"
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)",
            {"operation": "matmul", "expected": [2, 3], "got": [4, 5], "dimension": 1},
        ),
        (
            (
                "The size of tensor a (3) must match the size of tensor b (4) at non-singleton "
                "dimension 1"
            ),
            {
                "operation": "broadcast",
                "expected": None,
                "got": None,
                "dimension": 1,
                "expected_size": 3,
                "got_size": 4,
            },
        ),
        (
            "shape '[2, 2]' is invalid for input of size 3",
            {
                "operation": "reshape",
                "expected": [2, 2],
                "got": None,
                "dimension": None,
                "got_size": 3,
            },
        ),
        (
            "could not broadcast input array from shape (3,) into shape (2,)",
            {"operation": "assign", "expected": [2], "got": [3], "dimension": None},
        ),
    ],
)
def test_torch_and_numpy_shape_messages_are_parsed(message, expected):
    assert details(RuntimeError(message)) == expected
    assert classify(RuntimeError(message)) == "shape_mismatch"


def test_a_numpy_casting_error_is_a_dtype_mismatch_by_its_class():
    error = raised(FAULTS.dtype_cast)
    assert type(error).__module__.startswith("numpy")
    assert classify(error) == "dtype_mismatch"
    assert details(error) == {"expected": "int64", "got": "float64"}
    assert error_payload(error).suggestion == (
        "Convert the input to int64 before the call (e.g. array.astype(...) or tensor.to(...))"
    )


def test_a_numpy_ufunc_without_a_loop_is_a_dtype_mismatch_listing_the_dtypes():
    error = raised(lambda: np.array(["a"]) + np.array([1]))
    assert classify(error) == "dtype_mismatch"
    assert details(error) == {"expected": None, "got": None, "dtypes": ["<U1", "int64"]}


@pytest.mark.parametrize(
    ("message", "expected", "got"),
    [
        ("expected scalar type Float but found Double", "Float", "Double"),
        ("Found dtype Double but expected Float", "Float", "Double"),
        ("expected m1 and m2 to have the same dtype, but got: float != double", "float", "double"),
        ("result type Float can't be cast to the desired output type Long", "Long", "Float"),
    ],
)
def test_torch_dtype_messages_are_parsed(message, expected, got):
    assert classify(RuntimeError(message)) == "dtype_mismatch"
    assert details(RuntimeError(message)) == {"expected": expected, "got": got}


def test_a_cuda_out_of_memory_message_is_out_of_memory_with_device_and_bytes():
    error = RuntimeError(CUDA_OOM_MESSAGE)
    assert classify(error) == "out_of_memory"
    assert details(error) == {
        "device": "cuda:0",
        "requested_bytes": 2 * 2**30,
        "total_bytes": int(15.78 * 2**30),
        "available_bytes": int(1.02 * 2**30),
    }
    assert error_payload(error).suggestion == (
        "Reduce the batch size, free cached memory (torch.cuda.empty_cache(), drop unused "
        "tensors), or use a device with more memory"
    )


def test_the_newer_torch_out_of_memory_message_is_parsed_too():
    assert details(RuntimeError(NEW_CUDA_OOM_MESSAGE)) == {
        "device": "cuda:0",
        "requested_bytes": 20 * 2**20,
        "total_bytes": int(79.15 * 2**30),
        "available_bytes": int(5.56 * 2**20),
    }


def test_torch_out_of_memory_is_recognised_by_class_whatever_its_message():
    error = raised(FAULTS.cuda_oom_typed)
    assert (type(error).__module__, type(error).__qualname__) == ("torch.cuda", "OutOfMemoryError")
    assert classify(error) == "out_of_memory"

    class OutOfMemoryError(RuntimeError):
        pass

    OutOfMemoryError.__module__, OutOfMemoryError.__qualname__ = "torch", "OutOfMemoryError"
    assert details(OutOfMemoryError("no numbers here")) == {"device": "cuda"}


def test_torch_memory_statistics_are_added_when_torch_is_loaded(monkeypatch):
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        current_device=lambda: 0,
        mem_get_info=lambda index: (100, 1000),
        memory_allocated=lambda index: 600,
        memory_reserved=lambda index: 800,
        max_memory_allocated=lambda index: 700,
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    found = details(RuntimeError(CUDA_OOM_MESSAGE))
    assert found["available_bytes"] == 100
    assert found["total_bytes"] == 1000
    assert found["memory_stats"] == {
        "allocated_bytes": 600,
        "reserved_bytes": 800,
        "max_allocated_bytes": 700,
    }


def test_broken_torch_statistics_leave_the_parsed_details(monkeypatch):
    def broken(*args):
        raise RuntimeError("driver gone")

    cuda = types.SimpleNamespace(
        is_available=lambda: True, current_device=broken, mem_get_info=broken
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert details(RuntimeError(CUDA_OOM_MESSAGE))["requested_bytes"] == 2 * 2**30


def test_a_real_memory_error_from_numpy_reports_the_bytes_it_asked_for():
    error = raised(FAULTS.host_oom)
    assert isinstance(error, MemoryError)
    assert classify(error) == "out_of_memory"
    found = details(error)
    assert found["device"] == "cpu"
    assert found["requested_bytes"] == 2**53
    assert found["available_bytes"] is None or found["available_bytes"] > 0
    assert error_payload(error).suggestion == (
        "Reduce the batch or array size, process the data in chunks, or give the worker more memory"
    )


def test_a_bare_memory_error_is_out_of_memory_on_the_host():
    assert classify(MemoryError()) == "out_of_memory"
    assert details(MemoryError())["requested_bytes"] is None


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (
            RuntimeError(DEVICE_MISMATCH_MESSAGE),
            {"reason": "mismatch", "device": "cuda:0", "devices": ["cuda:0", "cpu"]},
        ),
        (
            RuntimeError("Expected object of device type cuda but got device type cpu"),
            {"reason": "mismatch", "device": "cuda", "devices": ["cuda", "cpu"]},
        ),
        (
            AssertionError("Torch not compiled with CUDA enabled"),
            {"reason": "not_available", "device": "cuda", "devices": ["cuda"]},
        ),
        (
            RuntimeError("No CUDA GPUs are available"),
            {"reason": "not_available", "device": "cuda", "devices": ["cuda"]},
        ),
        (
            RuntimeError("CUDA error: device-side assert triggered"),
            {"reason": "error", "device": "cuda", "devices": ["cuda"]},
        ),
    ],
)
def test_device_problems_are_device_errors(exception, expected):
    assert classify(exception) == "device"
    assert details(exception) == expected


def test_device_suggestions_differ_by_reason():
    assert error_payload(RuntimeError(DEVICE_MISMATCH_MESSAGE)).suggestion == (
        "Move every tensor to the same device (tensor.to(device)) before combining them"
    )
    assert error_payload(AssertionError("Torch not compiled with CUDA enabled")).suggestion == (
        "Device 'cuda' is not available on this worker: run on a host that has it, or fall back "
        "to the CPU"
    )


def test_an_import_error_names_the_missing_module():
    error = raised(FAULTS.import_missing)
    assert classify(error) == "import"
    assert details(error) == {"module": "snakepit_no_such_module"}
    assert error_payload(error).suggestion == (
        "Install the package that provides module 'snakepit_no_such_module' into the interpreter "
        "the pool runs (its pythonPath), or fix the import"
    )


def test_the_message_is_only_a_fallback_for_generic_classes():
    # A KeyError or a user's own exception is never re-classified by what its message says.
    assert classify(KeyError(CUDA_OOM_MESSAGE)) == "python"

    class TrainingFailed(Exception):
        pass

    assert classify(TrainingFailed("shapes (2,3) and (4,5) not aligned: 3 (dim 1)")) == "python"
    # A TypeError may be a dtype or shape problem, never out of memory.
    assert classify(TypeError(CUDA_OOM_MESSAGE)) == "python"


def test_common_builtins_get_suggestions_and_transient_ones_are_retryable():
    assert error_payload(FileNotFoundError(2, "No such file", "x.csv")).suggestion == (
        "Check the path: it is resolved on the worker, from the worker's cwd"
    )
    assert error_payload(TimeoutError("slow")).retryable is True
    assert error_payload(ConnectionResetError("reset")).retryable is True
    assert error_payload(ValueError("bad")).retryable is False
    assert error_payload(ValueError("bad")).suggestion == ""
    # An explicit kind drops the classification's details and retryability.
    assert error_payload(TimeoutError("slow"), kind="cancelled").retryable is False


def test_an_exception_s_own_suggestion_wins_over_the_classification():
    error = MemoryError()
    error.suggestion = "Use the streaming loader"
    assert error_payload(error).suggestion == "Use the streaming loader"


@pytest.mark.parametrize(
    "message",
    [
        "(" * 5000,
        "shapes (" + "1," * 3000 + " and",
        "could not be broadcast together with shapes " + "(1" * 2000,
        "\x00\udcff CUDA out of memory. Tried to allocate 9 ZiB",
        "",
    ],
)
def test_hostile_messages_neither_raise_nor_hang(message):
    for parser in (
        error_messages.shape_details,
        error_messages.dtype_details,
        error_messages.device_details,
        error_messages.out_of_memory_details,
    ):
        parser(message)
    assert classify_exception(RuntimeError(message)).kind in ("python", "out_of_memory")


def test_shapes_are_parsed_in_every_notation_and_junk_is_refused():
    assert error_messages.parse_shape("(2, 3)") == [2, 3]
    assert error_messages.parse_shape("(3,)") == [3]
    assert error_messages.parse_shape("[2, 2]") == [2, 2]
    assert error_messages.parse_shape("2x3x4") == [2, 3, 4]
    assert error_messages.parse_shape("()") == []
    assert error_messages.parse_shape("(2 3)") is None
    assert error_messages.parse_shape("two") is None
