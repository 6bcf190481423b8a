"""Specification of tensors and Arrow tables in call payloads (snakepit_bridge.tensors): real
regions through the real native library, with this test acting as the host."""

from __future__ import annotations

import gc
import glob
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import numpy
import pyarrow
import pytest

from snakepit_bridge import codec, log_records, native, native_descriptor, tensor_wire
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.adapter import Adapter, tool
from snakepit_bridge.errors import RegionAccessError, SerializationError, error_payload
from snakepit_bridge.native_region import Region
from snakepit_bridge.server import WorkerIdentity, WorkerServicer
from snakepit_bridge.tensors import RegionBroker

MSGPACK = worker_pb2.ENCODING_MSGPACK
NUMPY_DTYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "bool",
]  # fmt: skip
SHAPES = {"c-contiguous": (3, 4), "0-d": (), "empty": (0, 3), "vector": (5,)}
_counter = iter(range(1_000_000))
LIBRARY = native.load()


def wait_until(predicate: Callable[[], Any], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(0.005)


def sample(dtype: str, shape: tuple[int, ...]) -> numpy.ndarray:
    count = int(numpy.prod(shape, dtype=numpy.int64))
    values = numpy.arange(1, count + 1) % 7
    return (values % 2 == 0 if dtype == "bool" else values.astype(dtype)).reshape(shape)


class Host:
    """The host's half: makes argument regions and tokens, adopts result regions."""

    def __init__(self, **broker_options: Any) -> None:
        self.instance = f"pytensors{os.getpid() % 10000}_{next(_counter)}"[:20]
        self.secret = os.urandom(32)
        options = {"threshold_bytes": 64, "hold_limit_s": 5.0, **broker_options}
        self.broker = RegionBroker(
            library=LIBRARY, secret=self.secret, instance=self.instance, **options
        )
        self.regions: list[Region] = []

    def files(self) -> list[str]:
        return glob.glob(f"/dev/shm/snakepit-{self.instance}-*")

    def region(self, payload_bytes: int) -> Region:
        region = Region.create(LIBRARY, max(payload_bytes, 1), instance=self.instance)
        self.regions.append(region)
        return region

    def shared_arg(
        self,
        array: numpy.ndarray,
        request_id: str,
        *,
        read_only: bool = False,
        dtype: str | None = None,
        role: bytes = tensor_wire.ROLE_ARG,
    ) -> tuple[Region, msgpack.ExtType]:
        region = self.region(array.nbytes)
        region.numpy(numpy.uint8, (array.nbytes,))[:] = numpy.frombuffer(array.tobytes(), "u1")
        descriptor = native_descriptor.encode(
            native_descriptor.TensorDescriptor(
                dtype=dtype or array.dtype.name,
                shape=list(array.shape),
                region_name=region.name,
                region_generation=region.info().generation,
                read_only=read_only,
            )
        )
        return region, self.ext(tensor_wire.EXT_SHARED_TENSOR, region, descriptor, request_id, role)

    def ext(
        self,
        code: int,
        region: Region,
        descriptor: bytes,
        request_id: str,
        role: bytes = tensor_wire.ROLE_ARG,
        generation: int | None = None,
    ) -> msgpack.ExtType:
        generation = region.info().generation if generation is None else generation
        token = tensor_wire.region_token(
            self.secret, role, request_id, region.name, generation, descriptor
        )
        return tensor_wire.shared_ext(code, region.name, generation, descriptor, token)

    def adopt(self, data: bytes, request_id: str) -> Any:
        """Decodes a result as the host does: checks each token, opens each region once, and
        bumps its generation after the whole payload decoded (views of one region share it)."""
        opened: dict[str, Region] = {}

        def hook(code: int, raw: bytes) -> Any:
            fields = msgpack.unpackb(raw, raw=False)
            if code == tensor_wire.EXT_INLINE_TENSOR:
                return ("inline", fields[3], tensor_wire.inline_tensor_value(raw))
            if code == tensor_wire.EXT_INLINE_ARROW:
                return ("inline", fields[1], tensor_wire.inline_arrow_value(raw))
            name, generation, descriptor, token = fields
            expected = tensor_wire.region_token(
                self.secret, tensor_wire.ROLE_RESULT, request_id, name, generation, descriptor
            )
            assert token == expected
            if name not in opened:
                opened[name] = Region.open(LIBRARY, name, generation=generation)
                self.regions.append(opened[name])
            region = opened[name]
            if code == tensor_wire.EXT_SHARED_ARROW:
                size = native_descriptor.decode(descriptor).shape[0]
                value = pyarrow.ipc.open_stream(bytes(region.view()[:size])).read_all()
            elif native_descriptor.decode(descriptor).dtype == "bfloat16":
                value = native_descriptor.to_numpy(region, _as_uint16(descriptor)).copy()
            else:
                value = native_descriptor.to_numpy(region, descriptor).copy()
            return ("shared", region, value)

        result = msgpack.unpackb(data, raw=False, ext_hook=hook, strict_map_key=False)
        for region in opened.values():
            region.bump_generation()
        return result

    def close(self) -> None:
        self.broker.close()
        gc.collect()
        for region in self.regions:
            region.close()


def _as_uint16(descriptor: bytes) -> bytes:
    return descriptor[:24] + bytes((1, 16)) + descriptor[26:]


@pytest.fixture
def host() -> Iterator[Host]:
    made = Host()
    yield made
    made.close()
    assert made.files() == [], "a region created by the test was left in /dev/shm"


def decode_args(host: Host, value: Any, request_id: str) -> tuple[Any, Any]:
    regions = host.broker.call(request_id)
    data = msgpack.packb(value, use_bin_type=True)
    return codec.decode(data, MSGPACK, regions), regions


# --- arguments ---------------------------------------------------------------------------


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


def _refusal(host: Host, ext: Any, request_id: str) -> RegionAccessError:
    mapped_before = LIBRARY.process_usage()
    regions = host.broker.call(request_id)
    with pytest.raises(RegionAccessError) as raised:
        codec.decode(msgpack.packb({"x": ext}, use_bin_type=True), MSGPACK, regions)
    regions.close()
    assert LIBRARY.process_usage() == mapped_before, "the refused region stayed open"
    return raised.value


def _with_token(ext: msgpack.ExtType, token: bytes) -> msgpack.ExtType:
    name, generation, descriptor, _ = msgpack.unpackb(ext.data)
    return tensor_wire.shared_ext(ext.code, name, generation, descriptor, token)


def test_a_forged_token_is_refused_before_the_region_is_opened(host):
    region, ext = host.shared_arg(numpy.ones(4), "r10")
    error = _refusal(host, _with_token(ext, os.urandom(32)), "r10")
    assert (error.reason, error.region_name) == ("token_invalid", region.name)
    assert region.name in str(error) and "forged" in str(error)
    assert region.info().reference_count == 1


def test_a_token_replayed_from_another_call_or_role_is_refused(host):
    _, for_other_call = host.shared_arg(numpy.ones(4), "r11-other")
    assert _refusal(host, for_other_call, "r11").reason == "token_invalid"
    _, as_result = host.shared_arg(numpy.ones(4), "r11", role=tensor_wire.ROLE_RESULT)
    assert _refusal(host, as_result, "r11").reason == "token_invalid"


def test_a_tampered_descriptor_is_refused(host):
    region, ext = host.shared_arg(numpy.ones(4), "r12")
    name, generation, descriptor, token = msgpack.unpackb(ext.data)
    tampered = bytearray(descriptor)
    tampered[64] = 200  # shape[0]: 4 -> 200 elements, past the region's end
    forged = tensor_wire.shared_ext(0x10, name, generation, bytes(tampered), token)
    assert _refusal(host, forged, "r12").reason == "token_invalid"


def test_a_stale_generation_is_refused_as_region_unavailable(host):
    region, ext = host.shared_arg(numpy.ones(4), "r13")
    region.bump_generation()
    error = _refusal(host, ext, "r13")
    assert (error.reason, error.status_name) == ("region_unavailable", "generation_mismatch")
    assert "generation_mismatch" in str(error)


def test_an_out_of_bounds_descriptor_is_refused_as_descriptor_invalid(host):
    region = host.region(64)
    descriptor = native_descriptor.encode(
        native_descriptor.TensorDescriptor(
            dtype="float64", shape=[1000], region_name=region.name,
            region_generation=region.info().generation,
        )
    )  # fmt: skip
    ext = host.ext(0x10, region, descriptor, "r14")
    error = _refusal(host, ext, "r14")
    assert (error.reason, error.status_name) == ("descriptor_invalid", "descriptor_out_of_bounds")
    assert region.info().reference_count == 1


def test_an_unknown_region_is_refused_as_region_unavailable(host):
    name = f"/snakepit-{host.instance}-{'0' * 32}"
    descriptor = native_descriptor.encode(
        native_descriptor.TensorDescriptor(
            dtype="uint8", shape=[4], region_name=name, region_generation=1
        )
    )
    token = tensor_wire.region_token(host.secret, b"arg", "r15", name, 1, descriptor)
    error = _refusal(host, tensor_wire.shared_ext(0x10, name, 1, descriptor, token), "r15")
    assert (error.reason, error.status_name) == ("region_unavailable", "not_found")


def test_shared_values_reach_a_worker_without_zero_copy_as_zero_copy_disabled(host):
    _, ext = host.shared_arg(numpy.ones(4), "r16")
    plain = RegionBroker.disabled("test")
    with pytest.raises(RegionAccessError) as raised:
        codec.decode(msgpack.packb(ext), MSGPACK, plain.call("r16"))
    assert raised.value.reason == "zero_copy_disabled"
    with pytest.raises(RegionAccessError) as without_regions:
        codec.decode(msgpack.packb(ext), MSGPACK)
    assert without_regions.value.reason == "zero_copy_disabled"


def test_a_region_access_error_crosses_as_region_access_with_its_details():
    error = RegionAccessError(
        "Cannot open region x", reason="region_unavailable", region_name="/r", status_name="nf"
    )
    payload = error_payload(error)
    assert payload.kind == "region_access"
    details = msgpack.unpackb(payload.details)
    assert details == {"reason": "region_unavailable", "region": "/r", "status": "nf"}


# --- results -------------------------------------------------------------------------------


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


class TensorAdapter(Adapter):
    @tool
    def scale(self, values: Any, factor: float, ctx: Any) -> Any:
        out = ctx.alloc_tensor(values.shape, values.dtype)
        numpy.multiply(values, factor, out=out)
        return out

    @tool
    def total(self, values: Any) -> float:
        return float(values.sum())

    @tool
    def batches(self, count: int, ctx: Any) -> Iterator[Any]:
        for index in range(count):
            out = ctx.alloc_tensor((16,), "int64")
            out[:] = index
            yield {"own": out, "copied": numpy.full(16, index)}


class _RpcContext:
    def add_callback(self, _callback: Any) -> bool:
        return True

    def is_active(self) -> bool:
        return True


def test_execute_takes_a_tensor_argument_and_returns_a_tensor_result(host):
    servicer = WorkerServicer(TensorAdapter(), WorkerIdentity(), broker=host.broker)
    log_records.correlate_calls(servicer)  # As the worker process does.
    region, ext = host.shared_arg(numpy.arange(32, dtype=numpy.float64), "r30")
    request = worker_pb2.ExecuteRequest(
        request_id="r30",
        tool="scale",
        args=worker_pb2.Payload(
            encoding=MSGPACK, data=msgpack.packb({"values": ext, "factor": 2.0})
        ),
    )
    response = servicer.Execute(request, _RpcContext())
    assert response.WhichOneof("outcome") == "result", response.error
    form, result_region, result = host.adopt(response.result.data, "r30")
    assert form == "shared" and result.tolist() == [2.0 * i for i in range(32)]
    assert region.info().reference_count == 1  # the worker closed the argument region
    wait_until(lambda: result_region.info().reference_count == 1)
    servicer.close()


def test_execute_reports_a_refused_region_as_region_access(host):
    servicer = WorkerServicer(TensorAdapter(), WorkerIdentity(), broker=host.broker)
    _, ext = host.shared_arg(numpy.arange(4.0), "someone-else")
    request = worker_pb2.ExecuteRequest(
        request_id="r31",
        tool="total",
        args=worker_pb2.Payload(encoding=MSGPACK, data=msgpack.packb({"values": ext})),
    )
    error = servicer.Execute(request, _RpcContext()).error
    assert error.kind == "region_access"
    assert msgpack.unpackb(error.details)["reason"] == "token_invalid"
    assert servicer.Describe(None, None).capabilities.zero_copy is True
    servicer.close()


def test_execute_stream_hands_over_each_items_regions(host):
    servicer = WorkerServicer(TensorAdapter(), WorkerIdentity(), broker=host.broker)
    log_records.correlate_calls(servicer)
    request = worker_pb2.ExecuteRequest(
        request_id="r32",
        tool="batches",
        args=worker_pb2.Payload(encoding=MSGPACK, data=msgpack.packb({"count": 3})),
    )
    chunks = list(servicer.ExecuteStream(request, _RpcContext()))
    assert [chunk.WhichOneof("body") for chunk in chunks] == ["item"] * 3 + ["end"]
    for index, chunk in enumerate(chunks[:3]):
        item = host.adopt(chunk.item.data, "r32")
        assert item["own"][0] == item["copied"][0] == "shared"
        assert item["own"][2].tolist() == item["copied"][2].tolist() == [index] * 16
    wait_until(lambda: host.broker.pending_count == 0)
    servicer.close()
