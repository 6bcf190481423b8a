"""Specification of who may open a region a call names: forged, replayed, tampered, stale and
out-of-bounds descriptors refused with RegionAccessError, and the servicer carrying tensors
through Execute and ExecuteStream (tensor_host.py acts as the host)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy
import pytest

from snakepit_bridge import codec, log_records, native_descriptor, tensor_wire
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.adapter import Adapter, tool
from snakepit_bridge.errors import RegionAccessError, error_payload
from snakepit_bridge.server import WorkerIdentity, WorkerServicer
from snakepit_bridge.tensors import RegionBroker

from tensor_host import (
    Host,
    LIBRARY,
    MSGPACK,
    host,
    wait_until,
)


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
