"""Specification of the chunked copy path (snakepit_bridge.blobs): big values that do not go
through shared memory travel beside their call as blobs, streamed in chunks over gRPC. The store
on its own, the codec with a call's regions, and a real worker process over a real channel."""

from __future__ import annotations

import time
from types import SimpleNamespace

import grpc
import msgpack
import numpy
import pyarrow
import pytest

from snakepit_bridge import codec, tensor_wire
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.blobs import (
    CHUNK_BYTES,
    EXT_BLOB,
    EXT_BLOBBED_PAYLOAD,
    BlobError,
    BlobStore,
    blob_ext,
    blob_ref,
)
from snakepit_bridge.errors import SerializationError
from snakepit_bridge.tensors import RegionBroker

from worker_harness import request, start_worker, socket_directory  # noqa: F401 - fixtures

MSGPACK = worker_pb2.ENCODING_MSGPACK
TENSORS = "snakepit_bridge.examples.tensors:TensorAdapter"


def chunks(
    blob_id: str, data: bytes, size: int = 1000, total: int | None = None, offset: int = 0
) -> list[SimpleNamespace]:
    """One part of an upload as the host streams it: the first piece names the blob, its whole
    size and where the part begins."""
    pieces = [data[start : start + size] for start in range(0, len(data), size)] or [b""]
    return [
        SimpleNamespace(
            blob_id=blob_id if index == 0 else "",
            total_bytes=(len(data) if total is None else total) if index == 0 else 0,
            offset=offset if index == 0 else 0,
            data=piece,
        )
        for index, piece in enumerate(pieces)
    ]


def chunked_tensor_arg(array: numpy.ndarray, blob_id: str) -> msgpack.ExtType:
    """An INLINE_TENSOR whose bytes are named by a blob, as the host encodes big copied arrays."""
    body = [array.dtype.name, list(array.shape), blob_ext((blob_id, array.nbytes)), 0]
    return msgpack.ExtType(tensor_wire.EXT_INLINE_TENSOR, msgpack.packb(body, use_bin_type=True))


def unwrap(data: bytes) -> tuple[list[list], bytes]:
    """The blob list and inner payload of an ext 0x15 result."""
    outer = msgpack.unpackb(data, raw=False)
    assert isinstance(outer, msgpack.ExtType) and outer.code == EXT_BLOBBED_PAYLOAD
    refs, payload = msgpack.unpackb(outer.data, raw=False)
    return refs, payload


def copying_broker(threshold: int = 1024) -> RegionBroker:
    """A broker whose pool copies (zero-copy off) and chunks values of ``threshold`` bytes and up."""
    return RegionBroker(
        library=None,
        secret=None,
        instance="blobs",
        threshold_bytes=threshold,
        zero_copy=False,
        blobs=BlobStore(threshold),
    )


# --- the store -------------------------------------------------------------------------------


def test_an_upload_is_assembled_in_order_and_claimed_once():
    store = BlobStore()
    data = bytes(range(256)) * 40
    assert store.receive(chunks("c1.1", data, size=333)) == ("c1.1", len(data))
    assert store.pending_count == 1
    claimed = store.claim("c1.1", len(data))
    assert isinstance(claimed, bytearray) and claimed == data
    assert store.pending_count == 0
    with pytest.raises(SerializationError, match=r"blob 'c1.1' was never uploaded .* already used"):
        store.claim("c1.1", len(data))


def test_a_blob_arrives_in_parts_and_is_claimable_only_once_whole():
    store = BlobStore()
    data = bytes(range(200)) * 50
    assert store.receive(chunks("p.1", data[6000:], total=len(data), offset=6000)) == ("p.1", 4000)
    with pytest.raises(SerializationError, match=r"never uploaded to this worker whole"):
        store.claim("p.1", len(data))
    assert store.receive(chunks("p.1", data[:6000], total=len(data))) == ("p.1", len(data))
    assert store.claim("p.1", len(data)) == data


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([chunks("c.1", b"x" * 10, total=8)], r"announced 8 bytes, a part reaches past them"),
        ([chunks("c.1", b"x" * 6, total=10), chunks("c.1", b"x" * 6, total=10, offset=2)], r"overlap"),
        ([chunks("c.1", b"x" * 4, total=10), chunks("c.1", b"x" * 4, total=12, offset=4)], r"announced 10 bytes, then 12"),
        ([chunks("", b"x" * 10)], r"first chunk must name the blob"),
        ([[]], r"carried no chunk"),
    ],
    ids=["past-the-end", "overlap", "resized", "unnamed", "empty"],
)
def test_parts_that_do_not_add_up_are_refused_and_never_claimable(parts, message):
    store = BlobStore()
    with pytest.raises(BlobError, match=message) as caught:
        for part in parts:
            store.receive(part)
    assert caught.value.status == "INVALID_ARGUMENT"
    with pytest.raises(SerializationError):
        store.claim("c.1", 10)
    store.discard_call("c")
    assert store.pending_count == 0


def test_a_claim_of_the_wrong_size_is_a_serialization_error():
    store = BlobStore()
    store.receive(chunks("c.1", b"abcd"))
    with pytest.raises(SerializationError, match=r"holds 4 bytes, the payload says 5"):
        store.claim("c.1", 5)


def test_unclaimed_blobs_expire_and_a_call_drops_its_own():
    store = BlobStore(ttl_s=0.05)
    store.receive(chunks("old.1", b"a"))
    store.offer("old", b"b")
    time.sleep(0.1)
    store.receive(chunks("keep.1", b"c"))  # Each new blob sweeps the expired ones.
    assert store.pending_count == 1
    store.receive(chunks("call-1.1", b"d"))
    store.receive(chunks("call-10.1", b"e"))
    store.discard_call("call-1")
    store.claim("call-10.1", 1)
    store.claim("keep.1", 1)
    assert store.pending_count == 0


def test_an_offered_blob_streams_in_chunks_once():
    store = BlobStore()
    data = numpy.arange(CHUNK_BYTES // 4 + 10, dtype=numpy.float32).view(numpy.uint8)
    ref = store.offer("r9", data)
    assert ref is not None and ref[0].startswith("r9.r") and ref[1] == data.nbytes
    pieces = list(store.send(ref[0]))
    assert [len(piece) for piece in pieces] == [CHUNK_BYTES, 40]
    assert b"".join(pieces) == data.tobytes()
    with pytest.raises(BlobError, match=r"not waiting on this worker") as caught:
        store.send(ref[0])
    assert caught.value.status == "NOT_FOUND"


def test_an_offered_blob_is_sent_in_ranges_and_freed_by_the_last():
    store = BlobStore()
    data = bytes(range(256)) * 4
    blob_id, _ = store.offer("r8", data)
    assert b"".join(store.send(blob_id, 0, 1000)) == data[:1000], "a range short of the end keeps it"
    with pytest.raises(BlobError, match=r"holds 1024 bytes; bytes 1000 to 1030 are outside it") as caught:
        store.send(blob_id, 1000, 30)
    assert caught.value.status == "OUT_OF_RANGE"
    assert b"".join(store.send(blob_id, 24, 1000)) == data[24:]
    assert store.pending_count == 0, "the range that reaches the end frees it"


def test_bad_thresholds_and_malformed_references_are_refused():
    with pytest.raises(ValueError, match=r"SNAKEPIT_CHUNKED_COPY_THRESHOLD must be an integer >= 1"):
        BlobStore.from_env({"SNAKEPIT_CHUNKED_COPY_THRESHOLD": "lots"})
    with pytest.raises(ValueError, match=r"received '0'"):
        BlobStore.from_env({"SNAKEPIT_CHUNKED_COPY_THRESHOLD": "0"})
    assert BlobStore.from_env({"SNAKEPIT_CHUNKED_COPY_THRESHOLD": "4096"}).threshold_bytes == 4096
    assert BlobStore.from_env({}).threshold_bytes == 64 * 1024 * 1024
    assert blob_ref(b"bytes") is None
    with pytest.raises(SerializationError, match=r"ext 0x14\): it must be \[blob id: str, bytes: int\]"):
        blob_ref(msgpack.ExtType(EXT_BLOB, msgpack.packb(["id"])))


# --- the codec with a call's regions -----------------------------------------------------------


def test_a_chunked_argument_is_used_in_place_without_a_copy():
    broker = copying_broker()
    expected = numpy.arange(4096, dtype=numpy.float64).reshape(64, 64)
    broker.blobs.receive(chunks("a1.1", expected.tobytes(), size=4096))
    regions = broker.call("a1")
    arguments = codec.decode(codec.encode({"x": chunked_tensor_arg(expected, "a1.1")}, MSGPACK), MSGPACK, regions)
    received = arguments["x"]
    numpy.testing.assert_array_equal(received, expected)
    assert received.flags.writeable and isinstance(received.base.base.obj, bytearray)
    regions.close()
    assert broker.blobs.pending_count == 0


def test_a_chunked_argument_of_another_call_or_missing_is_refused():
    broker = copying_broker()
    array = numpy.zeros(300, dtype=numpy.int32)
    broker.blobs.receive(chunks("other.1", array.tobytes()))
    payload = codec.encode({"x": chunked_tensor_arg(array, "other.1")}, MSGPACK)
    regions = broker.call("mine")
    with pytest.raises(SerializationError, match=r"belongs to another call than 'mine'"):
        codec.decode(payload, MSGPACK, regions)
    regions.close()
    regions = broker.call("other")
    codec.decode(payload, MSGPACK, regions)
    with pytest.raises(SerializationError, match=r"never uploaded"):
        codec.decode(payload, MSGPACK, regions)
    regions.close()


def test_big_copied_results_leave_the_payload_as_blobs_small_ones_stay_inline():
    broker = copying_broker(threshold=4096)
    big = numpy.linspace(0, 1, 2048, dtype=numpy.float32).reshape(32, 64)[:, ::2]  # Strided.
    small = numpy.arange(10, dtype=numpy.int16)
    table = pyarrow.table({"v": numpy.arange(2000, dtype=numpy.int64)})
    regions = broker.call("r1")
    data = codec.encode({"big": big, "small": small, "table": table}, MSGPACK, regions)
    regions.close()
    refs, payload = unwrap(data)
    assert [ref[1] for ref in refs] == [big.nbytes, pytest.approx(16_000, rel=0.1)]
    fetched = {blob_id: b"".join(broker.blobs.send(blob_id)) for blob_id, _ in refs}
    assert broker.blobs.pending_count == 0

    def resolve(code: int, body: bytes):
        fields = msgpack.unpackb(body, raw=False)
        if code == tensor_wire.EXT_INLINE_TENSOR:
            ref = blob_ref(fields[2])
            raw = fields[2] if ref is None else fetched[ref[0]]
            flags = fields[3]
            return numpy.frombuffer(raw, dtype=fields[0]).reshape(fields[1]), flags
        ref = blob_ref(fields[0])
        assert ref is not None
        return pyarrow.ipc.open_stream(fetched[ref[0]]).read_all(), fields[1]

    value = msgpack.unpackb(payload, raw=False, ext_hook=resolve)
    numpy.testing.assert_array_equal(value["big"][0], big)
    assert value["big"][1] == tensor_wire.FLAG_IS_COPIED
    numpy.testing.assert_array_equal(value["small"][0], small)
    assert value["table"][0].equals(table)


def test_a_result_that_fails_to_encode_leaves_no_blob_behind():
    broker = copying_broker()
    regions = broker.call("r2")
    with pytest.raises(SerializationError):
        codec.encode([numpy.zeros(1024), object()], MSGPACK, regions)
    regions.close()
    assert broker.blobs.pending_count == 0


# --- a real worker over a real channel -----------------------------------------------------------


@pytest.fixture
def copying_worker(start_worker):  # noqa: F811 - the fixture
    return start_worker(
        TENSORS, env={"SNAKEPIT_ZERO_COPY": "0", "SNAKEPIT_CHUNKED_COPY_THRESHOLD": "1024"}
    )


def put(worker, blob_id: str, data: bytes, total: int | None = None) -> worker_pb2.BlobAck:
    pieces = [
        worker_pb2.BlobChunk(blob_id=p.blob_id, total_bytes=p.total_bytes, offset=p.offset, data=p.data)
        for p in chunks(blob_id, data, size=64 * 1024, total=total)
    ]
    return worker.stub.PutBlob(iter(pieces), timeout=10)


def test_a_worker_takes_a_chunked_argument_and_returns_a_chunked_result(copying_worker):
    expected = numpy.random.default_rng(7).standard_normal(1_200_000).astype(numpy.float32)
    ack = put(copying_worker, "w1.1", expected.tobytes())
    assert (ack.blob_id, ack.bytes) == ("w1.1", expected.nbytes)
    args = codec.encode({"x": chunked_tensor_arg(expected, "w1.1")}, MSGPACK)
    response = copying_worker.stub.Execute(
        request("echo", raw_args=args, request_id="w1"), timeout=10
    )
    assert response.WhichOneof("outcome") == "result", response.error
    refs, payload = unwrap(response.result.data)
    assert refs == [[refs[0][0], expected.nbytes]]
    pieces = list(copying_worker.stub.GetBlob(worker_pb2.BlobRequest(blob_id=refs[0][0]), timeout=10))
    assert [len(piece.data) for piece in pieces] == [CHUNK_BYTES, expected.nbytes - CHUNK_BYTES]
    received = numpy.frombuffer(b"".join(piece.data for piece in pieces), dtype=numpy.float32)
    numpy.testing.assert_array_equal(received, expected)
    assert msgpack.unpackb(payload, raw=False).code == tensor_wire.EXT_INLINE_TENSOR
    with pytest.raises(grpc.RpcError) as again:
        list(copying_worker.stub.GetBlob(worker_pb2.BlobRequest(blob_id=refs[0][0]), timeout=10))
    assert again.value.code() == grpc.StatusCode.NOT_FOUND
    assert "already fetched" in again.value.details()


def test_a_worker_refuses_a_bad_upload_with_a_status_and_a_missing_blob_as_an_error(copying_worker):
    with pytest.raises(grpc.RpcError) as caught:
        put(copying_worker, "w2.1", b"x" * 100, total=50)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "announced 50 bytes, a part reaches past them" in caught.value.details()
    array = numpy.zeros(512, dtype=numpy.float32)
    args = codec.encode({"x": chunked_tensor_arg(array, "w2.1")}, MSGPACK)
    response = copying_worker.stub.Execute(request("inspect", raw_args=args, request_id="w2"), timeout=10)
    assert response.WhichOneof("outcome") == "error"
    assert response.error.kind == "serialization"
    assert "never uploaded" in response.error.message


def test_cancelling_a_call_drops_the_blobs_it_uploaded(copying_worker):
    put(copying_worker, "w3.1", b"x" * 1000, total=4000)  # A part of an upload the host abandoned.
    put(copying_worker, "w30.1", b"y" * 8)
    assert copying_worker.stub.Cancel(worker_pb2.CancelRequest(request_id="w3"), timeout=10).found is False
    array = numpy.frombuffer(b"y" * 8, dtype=numpy.float32)
    args = codec.encode({"x": chunked_tensor_arg(array, "w30.1")}, MSGPACK)
    response = copying_worker.stub.Execute(request("inspect", raw_args=args, request_id="w30"), timeout=10)
    assert response.WhichOneof("outcome") == "result", "another call's blob is kept"
    put(copying_worker, "w3.1", b"x" * 4000)  # The abandoned part is gone: a whole upload fits.
