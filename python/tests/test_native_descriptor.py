"""Specification of tensor descriptors from Python (snakepit_bridge.native_descriptor)."""

from __future__ import annotations

import gc
import os
import random

import numpy
import pytest

from snakepit_bridge import native
from snakepit_bridge import native_descriptor as descriptors
from snakepit_bridge.native_errors import SharedMemoryError
from snakepit_bridge.native_region import Region

NAME = "/snakepit-desc-00112233445566778899aabbccddeeff"


@pytest.fixture(scope="module")
def library() -> native.NativeLibrary:
    return native.load()


def example(**overrides: object) -> descriptors.TensorDescriptor:
    fields: dict[str, object] = {
        "dtype": "float32",
        "shape": [3, 4],
        "region_name": NAME,
        "region_generation": 1,
    }
    fields.update(overrides)
    return descriptors.TensorDescriptor(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", sorted(descriptors.DTYPES))
def test_every_dtype_round_trips_and_the_library_keeps_the_bytes(
    library: native.NativeLibrary, dtype: str
) -> None:
    descriptor = example(dtype=dtype, shape=[2, 5], strides=[5, 1], byte_offset=16, read_only=True)
    encoded = descriptors.encode(descriptor)
    assert len(encoded) == 256
    assert descriptors.decode(encoded) == descriptor
    assert descriptors.normalize(library, encoded) == encoded


def test_validation_returns_the_extent_or_the_failing_status(library: native.NativeLibrary) -> None:
    assert descriptors.validate(library, descriptors.encode(example()), 48) == (0, 48)
    negative = example(strides=[-4, 1], byte_offset=40)
    assert descriptors.validate(library, descriptors.encode(negative), 56) == (8, 56)
    cases = [
        (example(), 47, "descriptor_out_of_bounds"),
        (example(byte_offset=2), 1000, "descriptor_misaligned"),
        (example(shape=[2**40, 2**40]), 2**50, "descriptor_overflow"),
        (example(dtype="complex128", byte_offset=4), 1000, "descriptor_misaligned"),
    ]
    for descriptor, payload, status_name in cases:
        with pytest.raises(SharedMemoryError) as caught:
            descriptors.validate(library, descriptors.encode(descriptor), payload)
        assert caught.value.status_name == status_name


def test_the_python_decoder_and_the_library_agree_on_damaged_descriptors(
    library: native.NativeLibrary,
) -> None:
    generator = random.Random(0xD1CE)
    base = descriptors.encode(example(strides=[4, 1], byte_offset=8))
    verdicts: dict[str, int] = {}
    for _ in range(3000):
        damaged = bytearray(base)
        for _ in range(generator.randint(1, 3)):
            damaged[generator.randrange(256)] ^= 1 << generator.randrange(8)
        try:
            descriptors.normalize(library, bytes(damaged))
            expected = "ok"
        except SharedMemoryError as error:
            expected = error.status_name
        try:
            descriptors.decode(bytes(damaged))
            actual = "ok"
        except SharedMemoryError as error:
            actual = error.status_name
        assert actual == expected, bytes(damaged).hex()
        verdicts[expected] = verdicts.get(expected, 0) + 1
    assert verdicts.get("ok", 0) > 100 and verdicts.get("descriptor_malformed", 0) > 100


def test_bad_fields_are_refused_when_encoding_and_short_bytes_when_decoding() -> None:
    with pytest.raises(ValueError):
        descriptors.encode(example(shape=[1] * 9))
    with pytest.raises(ValueError):
        descriptors.encode(example(region_name="/tmp/x"))
    with pytest.raises(ValueError):
        descriptors.encode(example(dtype="float8"))
    with pytest.raises(SharedMemoryError) as caught:
        descriptors.decode(b"\0" * 10)
    assert caught.value.status_name == "descriptor_malformed"


def test_to_numpy_views_the_region_with_strides_and_honours_read_only(
    library: native.NativeLibrary,
) -> None:
    region = Region.create(library, 4096, instance=f"np_{os.getpid()}")
    try:
        region.numpy(numpy.float32, (12,))[:] = numpy.arange(12)
        encoded = descriptors.encode(
            descriptors.TensorDescriptor(
                "float32", [4, 3], region.name, 1, strides=[1, 4], read_only=True
            )
        )
        array = descriptors.to_numpy(region, encoded)
        assert array.tolist() == [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="cannot set WRITEABLE flag"):
            array.flags.writeable = True
        writable = descriptors.encode(descriptors.TensorDescriptor("float32", [12], region.name, 1))
        numbers = descriptors.to_numpy(region, writable)
        numbers[0] = 42
        assert array[0, 0] == 42, "no copy: both arrays view the same memory"
        region.bump_generation()
        with pytest.raises(SharedMemoryError) as caught:
            descriptors.to_numpy(region, writable)
        assert caught.value.status_name == "generation_mismatch"
        bfloat = descriptors.encode(descriptors.TensorDescriptor("bfloat16", [2], region.name, 2))
        with pytest.raises(ValueError, match="bfloat16"):
            descriptors.to_numpy(region, bfloat)
        del array, numbers
    finally:
        gc.collect()
        region.close()
