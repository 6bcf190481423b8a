"""The host side of the tensor tests: a host that makes regions and tokens with the real
native library, and the fixtures the tensor test files share (see test_tensors.py and
test_tensor_access.py)."""

from __future__ import annotations

import gc
import glob
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import numpy
import pyarrow
import pytest

from snakepit_bridge import codec, native, native_descriptor, tensor_wire
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.native_region import Region
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
