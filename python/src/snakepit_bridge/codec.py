"""Encoding of small values between the host and a worker: msgpack (default) or JSON.

msgpack round-trips faithfully what TypeScript can represent: integers in the 64-bit range,
floats including NaN and the infinities, any Unicode string, bytes, maps (with non-string keys),
arrays, nil and booleans. Anything else is refused with a `SerializationError` that says what to
do instead, rather than silently turned into something else. JSON exists for debugging.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.errors import SerializationError

INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1

ENCODING_NAMES = {
    worker_pb2.ENCODING_UNSPECIFIED: "msgpack",
    worker_pb2.ENCODING_MSGPACK: "msgpack",
    worker_pb2.ENCODING_JSON: "json",
    worker_pb2.ENCODING_ARROW_IPC: "arrow_ipc",
}


def resolve_encoding(encoding: int) -> int:
    """The encoding a payload really uses: UNSPECIFIED means msgpack, the default."""
    if encoding == worker_pb2.ENCODING_UNSPECIFIED:
        return worker_pb2.ENCODING_MSGPACK
    if encoding in (worker_pb2.ENCODING_MSGPACK, worker_pb2.ENCODING_JSON):
        return encoding
    name = ENCODING_NAMES.get(encoding, f"#{encoding}")
    raise SerializationError(
        f"Encoding {name} is not supported by this worker (it speaks msgpack and json)",
        suggestion="Send arguments as msgpack; Arrow IPC arrives in a later version",
    )


def encode(value: Any, encoding: int = worker_pb2.ENCODING_MSGPACK) -> bytes:
    """Encodes `value`; raises SerializationError for anything that would not round-trip."""
    if resolve_encoding(encoding) == worker_pb2.ENCODING_JSON:
        return encode_json(value)
    return encode_msgpack(value)


def decode(data: bytes, encoding: int = worker_pb2.ENCODING_MSGPACK) -> Any:
    """Decodes bytes produced by `encode` (or by the host's encoder) in the same encoding."""
    if resolve_encoding(encoding) == worker_pb2.ENCODING_JSON:
        return decode_json(data)
    return decode_msgpack(data)


def encode_msgpack(value: Any) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True, default=_msgpack_default)
    except SerializationError:
        raise
    except UnicodeEncodeError as error:
        raise SerializationError(
            f"Cannot encode a str that is not valid Unicode text ({error.reason} at position "
            f"{error.start}): lone surrogates have no UTF-8 form",
            suggestion="Send binary data as bytes, or clean the text before returning it",
        ) from None
    except (ValueError, TypeError, OverflowError) as error:
        # msgpack reports nesting past its recursion limit (including cyclic containers) as a
        # ValueError; say so in the project's terms.
        raise SerializationError(f"Cannot encode value as msgpack: {error}") from None


def decode_msgpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as error:  # noqa: BLE001 - every malformed input becomes one error class
        raise SerializationError(
            f"Cannot decode msgpack payload of {len(data)} bytes: {type(error).__name__}: {error}"
        ) from None


def encode_json(value: Any) -> bytes:
    try:
        text = json.dumps(
            value, allow_nan=True, ensure_ascii=False, separators=(",", ":"), default=_json_default
        )
        return text.encode("utf-8")
    except SerializationError:
        raise
    except UnicodeEncodeError as error:
        raise SerializationError(
            f"Cannot encode a str that is not valid Unicode text ({error.reason}) as JSON"
        ) from None
    except (ValueError, TypeError, RecursionError) as error:
        raise SerializationError(f"Cannot encode value as JSON: {error}") from None


def decode_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        raise SerializationError(
            f"Cannot decode JSON payload of {len(data)} bytes: {error}"
        ) from None


def _msgpack_default(value: Any) -> Any:
    # msgpack calls this for ints outside the 64-bit range as well as for unknown types.
    if isinstance(value, int) and not isinstance(value, bool):
        raise _integer_out_of_range(value)
    return _convert_foreign(value, "msgpack")


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise SerializationError(
            f"Cannot encode {type(value).__name__} of {len(value)} bytes as JSON: "
            "JSON has no binary type",
            suggestion="Use the msgpack encoding (the default) to send bytes",
        )
    return _convert_foreign(value, "JSON")


def _convert_foreign(value: Any, encoding_name: str) -> Any:
    """numpy scalars become Python scalars; everything else unknown is refused, with advice."""
    value_type = type(value)
    module = value_type.__module__ or ""
    if module == "numpy" or module.startswith("numpy."):
        # Imported only here: a worker that never sees numpy values never pays for numpy.
        import numpy

        if isinstance(value, numpy.ndarray):
            raise SerializationError(
                f"Cannot encode numpy.ndarray (shape {value.shape}, dtype {value.dtype}) as "
                f"{encoding_name}: return arr.tolist() for small arrays; "
                "shared-memory tensors arrive in a later version",
                suggestion="Return arr.tolist() for small arrays",
            )
        if isinstance(value, numpy.generic):
            converted = value.item()
            if type(converted).__module__ != "numpy":
                return converted
    raise SerializationError(
        f"Cannot encode value of type {module}.{value_type.__qualname__} as {encoding_name}: "
        "return only dict, list, tuple, str, int, float, bool, bytes or None",
        suggestion="Convert the value to plain Python data (a dict or list) before returning it",
    )


def _integer_out_of_range(value: int) -> SerializationError:
    side = "above 2**64-1" if value > 0 else "below -2**63"
    return SerializationError(
        f"Cannot encode integer of {value.bit_length()} bits ({_magnitude(value)}): it is {side}, "
        "and msgpack carries integers from -2**63 to 2**64-1",
        suggestion="Return very large integers as str(value)",
    )


def _magnitude(value: int) -> str:
    # float() of an integer above about 1.8e308 overflows; the bit length still tells the size.
    try:
        return f"about {float(value):.3e}"
    except OverflowError:
        return f"about 2**{value.bit_length() - 1} or more in magnitude"
