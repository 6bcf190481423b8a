"""The codec: faithful msgpack round-trips, and refusals that say what to do instead."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import numpy as np
import pytest

from snakepit_bridge import codec
from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.errors import SerializationError

MSGPACK = worker_pb2.ENCODING_MSGPACK
JSON = worker_pb2.ENCODING_JSON


def round_trip(value, encoding=MSGPACK):
    return codec.decode(codec.encode(value, encoding), encoding)


@pytest.mark.parametrize(
    "value",
    [
        2**64 - 1, 2**63, 2**63 - 1, -(2**63), 0, -1, True, False, None,
        1.5, math.inf, -math.inf, "", "🐍\x00é", b"\x00\xff", {1: {2: [3]}}, {"k": b"v"},
    ],
    ids=repr,
)  # fmt: skip
def test_msgpack_round_trips_values_of_every_supported_type(value):
    decoded = round_trip(value)
    assert decoded == value
    assert type(decoded) is type(value)


def test_msgpack_round_trips_nan():
    assert math.isnan(round_trip(math.nan))


def test_tuples_bytearrays_and_memoryviews_arrive_as_lists_and_bytes():
    assert round_trip((1, (2, 3))) == [1, [2, 3]]
    assert round_trip(bytearray(b"ab")) == b"ab"
    assert round_trip(memoryview(b"cd")) == b"cd"


def test_unspecified_encoding_means_msgpack():
    data = codec.encode({"a": 1}, worker_pb2.ENCODING_UNSPECIFIED)
    assert data == codec.encode({"a": 1}, MSGPACK)
    assert codec.decode(data, worker_pb2.ENCODING_UNSPECIFIED) == {"a": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**64, "Cannot encode integer of 65 bits (about 1.845e+19): it is above 2**64-1"),
        (-(2**63) - 1, "Cannot encode integer of 64 bits (about -9.223e+18): it is below -2**63"),
        (2**70, "71 bits"),
        (10**400, "about 2**1328 or more in magnitude"),
    ],
)
def test_integers_beyond_64_bits_are_refused_with_their_magnitude_and_the_limit(value, expected):
    with pytest.raises(SerializationError) as raised:
        codec.encode({"nested": [value]})
    assert expected in str(raised.value)
    assert "msgpack carries integers from -2**63 to 2**64-1" in str(raised.value)
    assert raised.value.suggestion == "Return very large integers as str(value)"


def test_numpy_scalars_become_python_scalars():
    value = [np.int64(-3), np.uint64(2**64 - 1), np.float32(0.5), np.bool_(True), np.float64(2)]
    decoded = round_trip(value)
    assert decoded == [-3, 2**64 - 1, 0.5, True, 2.0]
    assert [type(v) for v in decoded] == [int, int, float, bool, float]


def test_numpy_arrays_are_refused_with_advice_to_use_tolist():
    with pytest.raises(SerializationError) as raised:
        codec.encode({"x": np.zeros((2, 3), dtype=np.float32)})
    assert str(raised.value) == (
        "Cannot encode numpy.ndarray (shape (2, 3), dtype float32) as msgpack: return arr.tolist() "
        "for small arrays; arrays cross only in a call from a Snakepit pool, which sets up tensors"
    )


@pytest.mark.parametrize("value", [{1, 2}, Decimal("1.5"), object()], ids=repr)
def test_unknown_types_are_refused_naming_the_type(value):
    with pytest.raises(SerializationError) as raised:
        codec.encode(value)
    type_name = f"{type(value).__module__}.{type(value).__qualname__}"
    assert f"Cannot encode value of type {type_name} as msgpack" in str(raised.value)
    assert "return only dict, list, tuple, str, int, float, bool, bytes or None" in str(
        raised.value
    )


def test_strings_that_are_not_valid_unicode_are_refused():
    with pytest.raises(SerializationError, match="lone surrogates have no UTF-8 form"):
        codec.encode("\ud800")


def test_cyclic_containers_are_refused_not_crashed_on():
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(SerializationError, match="Cannot encode value as msgpack"):
        codec.encode(cyclic)
    with pytest.raises(SerializationError, match="Circular reference"):
        codec.encode(cyclic, JSON)


def test_malformed_msgpack_is_a_serialization_error():
    with pytest.raises(SerializationError, match="Cannot decode msgpack payload of 2 bytes"):
        codec.decode(b"\x92\x01")


def test_json_round_trips_plain_values_with_nan_and_infinity():
    decoded = round_trip({"a": [1, 2.5, "✓", None, True], "inf": math.inf}, JSON)
    assert decoded == {"a": [1, 2.5, "✓", None, True], "inf": math.inf}
    assert math.isnan(round_trip(math.nan, JSON))
    assert codec.encode({"a": "é"}, JSON) == '{"a":"é"}'.encode()


def test_json_refuses_bytes_and_points_at_msgpack():
    with pytest.raises(SerializationError) as raised:
        codec.encode({"b": b"xyz"}, JSON)
    assert str(raised.value) == "Cannot encode bytes of 3 bytes as JSON: JSON has no binary type"
    assert "msgpack" in raised.value.suggestion


def test_json_converts_numpy_scalars_and_refuses_arrays():
    assert json.loads(codec.encode(np.float64(1.5), JSON)) == 1.5
    with pytest.raises(SerializationError, match="as JSON: return arr.tolist"):
        codec.encode(np.arange(2), JSON)


def test_malformed_json_is_a_serialization_error():
    with pytest.raises(SerializationError, match="Cannot decode JSON payload of 3 bytes"):
        codec.decode(b"{x}", JSON)


def test_arrow_ipc_is_refused_until_a_later_version():
    with pytest.raises(SerializationError, match="arrow_ipc is not supported"):
        codec.encode(1, worker_pb2.ENCODING_ARROW_IPC)
