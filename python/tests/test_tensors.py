"""Specification of tensors and Arrow tables in call payloads (snakepit_bridge.tensors):
values both ways, in place and read-only, thresholds, hand-over and tables; real regions through
the real native library, with tensor_host.py acting as the host."""

from __future__ import annotations

import re

import msgpack
import numpy
import pyarrow
import pytest

from snakepit_bridge import codec, native_descriptor, tensor_wire
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.errors import SerializationError
from snakepit_bridge.tensors import RegionBroker

from tensor_host import (
    Host,
    MSGPACK,
    NUMPY_DTYPES,
    SHAPES,
    decode_args,
    host,
    sample,
    wait_until,
)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_every_dtype_arrives_unchanged_from_a_host_region(host, dtype, shape):
    expected = sample(dtype, shape)
    _, ext = host.shared_arg(expected, "r1")
    arguments, regions = decode_args(host, {"x": ext}, "r1")
    received = arguments["x"]
    assert received.dtype == expected.dtype and received.shape == expected.shape
    assert received.tobytes() == expected.tobytes()
    del arguments, received
    regions.close()


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_every_dtype_round_trips_inline_and_shared_as_a_result(host, dtype, shape):
    expected = sample(dtype, shape)
    for threshold, form in ((1 << 30, "inline"), (0, "shared")):
        host.broker.threshold_bytes = threshold
        regions = host.broker.call("r2")
        data = codec.encode({"y": expected}, MSGPACK, regions)
        regions.close()
        received_form, _, received = host.adopt(data, "r2")["y"]
        assert received_form == form
        assert received.dtype == expected.dtype and received.shape == expected.shape
        numpy.testing.assert_array_equal(received, expected)
    wait_until(lambda: host.broker.pending_count == 0)


def test_strided_results_round_trip_inline_and_shared(host):
    whole = numpy.arange(48, dtype=numpy.int32).reshape(6, 8)
    for strided in (whole[:, ::2], whole[::-1], whole.T):
        for threshold in (1 << 30, 0):
            host.broker.threshold_bytes = threshold
            regions = host.broker.call("r3")
            data = codec.encode(strided, MSGPACK, regions)
            regions.close()
            numpy.testing.assert_array_equal(host.adopt(data, "r3")[2], strided)


def test_a_strided_argument_descriptor_is_honoured(host):
    base = numpy.arange(24, dtype=numpy.int64).reshape(4, 6)
    region = host.region(base.nbytes)
    region.numpy(numpy.int64, (4, 6))[:] = base
    descriptor = native_descriptor.encode(
        native_descriptor.TensorDescriptor(
            dtype="int64", shape=[4, 3], strides=[6, 2], region_name=region.name,
            region_generation=region.info().generation, byte_offset=8,
        )
    )  # fmt: skip
    ext = host.ext(tensor_wire.EXT_SHARED_TENSOR, region, descriptor, "r4")
    arguments, regions = decode_args(host, [ext], "r4")
    numpy.testing.assert_array_equal(arguments[0], base[:, 1::2])
    del arguments
    regions.close()


def test_bfloat16_arrives_as_its_uint16_storage_and_goes_back_as_bfloat16(host):
    raw = numpy.array([0x3F80, 0x4000, 0xC040], dtype=numpy.uint16)  # 1.0, 2.0, -3.0
    _, ext = host.shared_arg(raw, "r5", dtype="bfloat16")
    arguments, regions = decode_args(host, {"x": ext}, "r5")
    assert arguments["x"].dtype == numpy.uint16
    assert arguments["x"].tolist() == raw.tolist()
    out = regions.alloc_tensor((3,), "bfloat16")
    out[:] = arguments["x"]
    data = codec.encode(out, MSGPACK, regions)
    del arguments, out
    regions.close()
    fields = msgpack.unpackb(msgpack.unpackb(data).data)
    assert native_descriptor.decode(fields[2]).dtype == "bfloat16"
    assert host.adopt(data, "r5")[2].tolist() == raw.tolist()


def test_writes_by_the_worker_are_visible_through_the_hosts_region(host):
    region, ext = host.shared_arg(numpy.zeros(8, numpy.float64), "r6")
    arguments, regions = decode_args(host, {"x": ext}, "r6")
    arguments["x"][2:4] = 7.5
    assert region.numpy(numpy.float64, (8,))[2:4].tolist() == [7.5, 7.5]
    del arguments
    regions.close()
    assert region.info().reference_count == 1


def test_a_read_only_argument_refuses_writes(host):
    _, ext = host.shared_arg(numpy.ones(4, numpy.int32), "r7", read_only=True)
    arguments, regions = decode_args(host, {"x": ext}, "r7")
    with pytest.raises(ValueError, match="read-only"):
        arguments["x"][0] = 3
    del arguments
    regions.close()


def test_inline_arguments_are_writable_copies_unless_flagged_read_only(host):
    array = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
    writable = tensor_wire.inline_tensor_ext(array, "float32", is_copied=False)
    fields = msgpack.unpackb(writable.data)
    fields[3] = tensor_wire.FLAG_READ_ONLY
    read_only = msgpack.ExtType(0x11, msgpack.packb(fields))
    arguments, regions = decode_args(host, [writable, read_only], "r8")
    numpy.testing.assert_array_equal(arguments[0], array)
    arguments[0][0, 0] = 9
    with pytest.raises(ValueError, match="read-only"):
        arguments[1][0, 0] = 9
    regions.close()


def test_a_malformed_inline_tensor_is_a_serialization_error(host):
    bad = msgpack.ExtType(0x11, msgpack.packb(["float32", [4], b"\0" * 3, 0]))
    with pytest.raises(SerializationError, match="needs 16 bytes, got 3"):
        decode_args(host, [bad], "r9")
    bad_dtype = msgpack.ExtType(0x11, msgpack.packb(["complex64", [1], b"\0" * 8, 0]))
    with pytest.raises(SerializationError, match="dtype 'complex64' is not one of"):
        decode_args(host, [bad_dtype], "r9")


# --- refused shared arguments --------------------------------------------------------------


def test_a_result_region_is_released_once_the_host_bumps_its_generation(host):
    regions = host.broker.call("r20")
    data = codec.encode(numpy.arange(64, dtype=numpy.int64), MSGPACK, regions)
    regions.close()
    assert host.broker.pending_count == 1
    _, region, value = host.adopt(data, "r20")
    assert value.tolist() == list(range(64))
    wait_until(lambda: region.info().reference_count == 1)  # only the host's is left
    assert host.broker.pending_count == 0


def test_a_result_region_never_adopted_is_unlinked_after_the_hold_limit():
    host = Host(hold_limit_s=0.2)
    try:
        regions = host.broker.call("r21")
        codec.encode(numpy.arange(64, dtype=numpy.int64), MSGPACK, regions)
        regions.close()
        assert len(host.files()) == 1
        wait_until(lambda: host.files() == [])
        assert host.broker.pending_count == 0
    finally:
        host.close()


def test_an_alloc_tensor_result_goes_back_without_a_copy_once_per_payload(host):
    host.broker.threshold_bytes = 0
    regions = host.broker.call("r22")
    out = regions.alloc_tensor((16, 4), "float32")
    out[:] = 3.0
    name = regions._allocated[0].region.name
    data = codec.encode({"out": out, "part": out[2:6, ::2]}, MSGPACK, regions)
    del out
    regions.close()
    result = host.adopt(data, "r22")
    assert result["out"][1].name == name
    # A second view of the same region in one payload is copied: the host's adoption of the
    # first reference (a generation bump) would make a second reference stale.
    assert result["part"][1].name != name
    assert result["part"][2].shape == (4, 2) and result["part"][2].sum() == 3.0 * 8
    assert result["out"][2].sum() == 3.0 * 64


def test_the_threshold_is_inclusive(host):
    host.broker.threshold_bytes = 64
    below = numpy.zeros(63, numpy.uint8)
    at = numpy.zeros(64, numpy.uint8)
    regions = host.broker.call("r23")
    result = host.adopt(codec.encode([below, at], MSGPACK, regions), "r23")
    regions.close()
    assert [form for form, _, _ in result] == ["inline", "shared"]


def test_with_zero_copy_disabled_large_results_go_inline_marked_copied():
    broker = RegionBroker.from_env(
        "pytensors_off", {"SNAKEPIT_ZERO_COPY": "0", "SNAKEPIT_ZERO_COPY_THRESHOLD": "16"}
    )
    assert (broker.enabled, broker.disabled_reason) == (False, "SNAKEPIT_ZERO_COPY=0")
    regions = broker.call("r24")
    assert type(regions.alloc_tensor((4,), "int8").base) is not memoryview
    data = codec.encode([numpy.zeros(2), numpy.zeros(2, numpy.int8)], MSGPACK, regions)
    fields = [msgpack.unpackb(ext.data) for ext in msgpack.unpackb(data)]
    assert [f[3] for f in fields] == [tensor_wire.FLAG_IS_COPIED, 0]
    regions.close()


def test_the_environment_configures_the_broker():
    assert RegionBroker.from_env("pyt", {}).wire is False
    no_secret = RegionBroker.from_env("pyt", {"SNAKEPIT_ZERO_COPY": "1"})
    assert no_secret.disabled_reason == "SNAKEPIT_REGION_SECRET is not set"
    enabled = RegionBroker.from_env(
        "pyt", {"SNAKEPIT_REGION_SECRET": "ab" * 32, "SNAKEPIT_ZERO_COPY_THRESHOLD": "0"}
    )
    assert (enabled.enabled, enabled.threshold_bytes, enabled.secret) == (True, 0, b"\xab" * 32)
    with pytest.raises(ValueError, match="SNAKEPIT_ZERO_COPY_THRESHOLD must be an integer"):
        RegionBroker.from_env("pyt", {"SNAKEPIT_ZERO_COPY_THRESHOLD": "-1"})


def test_unsupported_dtypes_are_refused_naming_the_dtype(host):
    regions = host.broker.call("r25")
    for value, advice in (
        (numpy.array(["a"]), "list"),
        (numpy.array([1j]), "numpy.real"),
        (numpy.array(["2020-01-01"], dtype="datetime64[D]"), "int64"),
        (numpy.array([object()]), "list"),
    ):
        with pytest.raises(SerializationError, match=re.escape(f"dtype {value.dtype}")) as raised:
            codec.encode(value, MSGPACK, regions)
        assert advice in raised.value.suggestion
    regions.close()


def test_json_refuses_tensors_and_tables():
    with pytest.raises(SerializationError, match="only in msgpack"):
        codec.encode(pyarrow.table({"a": [1]}), worker_pb2.ENCODING_JSON)
    with pytest.raises(SerializationError, match="only in msgpack"):
        codec.encode(numpy.zeros(2), worker_pb2.ENCODING_JSON)


@pytest.mark.parametrize("kind", ["table", "record_batch", "dataframe"])
@pytest.mark.parametrize("threshold", [1 << 30, 0], ids=["inline", "shared"])
def test_arrow_and_pandas_results_cross_as_arrow_streams(host, kind, threshold):
    table = pyarrow.table({"a": list(range(100)), "b": [f"s{i}" for i in range(100)]})
    value = {
        "table": table,
        "record_batch": table.to_batches()[0],
        "dataframe": table.to_pandas(),
    }[kind]
    host.broker.threshold_bytes = threshold
    regions = host.broker.call("r26")
    form, _, received = host.adopt(codec.encode(value, MSGPACK, regions), "r26")
    regions.close()
    assert form == ("inline" if threshold else "shared")
    assert received.select(["a", "b"]).to_pydict() == table.to_pydict()


def test_arrow_arguments_are_read_in_place_from_the_region(host):
    table = pyarrow.table({"a": numpy.arange(1000, dtype=numpy.int64)})
    sink = pyarrow.BufferOutputStream()
    tensor_wire.write_ipc(table, sink)
    stream = sink.getvalue().to_pybytes()
    region = host.region(len(stream))
    region.view()[: len(stream)] = stream
    descriptor = native_descriptor.encode(
        native_descriptor.TensorDescriptor(
            dtype="uint8", shape=[len(stream)], region_name=region.name,
            region_generation=region.info().generation,
        )
    )  # fmt: skip
    ext = host.ext(tensor_wire.EXT_SHARED_ARROW, region, descriptor, "r27")
    inline = tensor_wire.inline_arrow_ext(table, is_copied=False)
    arguments, regions = decode_args(host, [ext, inline], "r27")
    assert arguments[0].equals(table) and arguments[1].equals(table)
    # The worker's own mapping of the region (the host's lies elsewhere in this process).
    mapping = numpy.frombuffer(regions._opened[0].view(), numpy.uint8)
    start = mapping.__array_interface__["data"][0]
    address = arguments[0].column("a").chunks[0].buffers()[1].address
    assert start <= address < start + region.payload_bytes
    del arguments, mapping
    regions.close()
    assert host.broker.lingering_count == 0


def test_a_tool_that_keeps_an_argument_array_does_not_break_the_call(host):
    region, ext = host.shared_arg(numpy.ones(4), "r28")
    arguments, regions = decode_args(host, {"x": ext}, "r28")
    kept = arguments["x"]
    del arguments
    regions.close()
    assert host.broker.lingering_count == 1
    assert region.info().reference_count == 2
    del kept
    host.broker.sweep()
    assert host.broker.lingering_count == 0
    assert region.info().reference_count == 1


def test_torch_tensors_are_sent_as_tensors(host):
    torch = pytest.importorskip("torch")
    regions = host.broker.call("r29")
    value = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    received = host.adopt(codec.encode(value, MSGPACK, regions), "r29")[2]
    regions.close()
    numpy.testing.assert_array_equal(received, value.numpy())


# --- through the servicer ------------------------------------------------------------------
