"""Encoding of small values between the host and a worker: msgpack (default) or JSON.

msgpack round-trips faithfully what TypeScript can represent: integers in the 64-bit range,
floats including NaN and the infinities, any Unicode string, bytes, maps (with non-string keys),
arrays, nil and booleans. Anything else is refused with a `SerializationError` that says what to
do instead, rather than silently turned into something else. JSON exists for debugging.

With a call's `CallRegions` (`regions`), msgpack also carries numpy arrays, torch tensors, Arrow
tables and pandas DataFrames as ext types 0x10-0x13 (`tensor_wire`), inline or in shared
memory; a big inline value travels as a blob beside the payload (0x14, 0x15: `blobs`). Without it, those ext types are refused and arrays are refused with advice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgpack

from snakepit_bridge._generated import worker_pb2
from snakepit_bridge.blobs import blobbed_payload
from snakepit_bridge.errors import (
    REGION_ZERO_COPY_DISABLED,
    RegionAccessError,
    SerializationError,
    SnakepitBridgeError,
)

if TYPE_CHECKING:
    from snakepit_bridge.tensor_call import CallRegions

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
        suggestion="Send arguments as msgpack; Arrow tables travel inside msgpack payloads",
    )


def encode(
    value: Any, encoding: int = worker_pb2.ENCODING_MSGPACK, regions: CallRegions | None = None
) -> bytes:
    """Encodes `value`; raises SerializationError for anything that would not round-trip.

    With `regions`, tensors and tables become ext values, and the regions made for them are
    handed over once the whole payload encoded (released at once when it did not).
    """
    if resolve_encoding(encoding) == worker_pb2.ENCODING_JSON:
        return encode_json(value)
    return encode_msgpack(value, regions)


def decode(
    data: bytes, encoding: int = worker_pb2.ENCODING_MSGPACK, regions: CallRegions | None = None
) -> Any:
    """Decodes bytes produced by `encode` (or by the host's encoder) in the same encoding.

    With `regions`, tensor and table ext values decode (shared ones after their token and the
    native checks); the regions opened stay open until `regions.close()`.
    """
    if resolve_encoding(encoding) == worker_pb2.ENCODING_JSON:
        return decode_json(data)
    return decode_msgpack(data, regions)


def encode_msgpack(value: Any, regions: CallRegions | None = None) -> bytes:
    if regions is None:
        return _packb(value, _msgpack_default)

    def default(item: Any) -> Any:
        ext = regions.encode_default(item)
        return _msgpack_default(item) if ext is None else ext

    try:
        data = _packb(value, default)
    except BaseException:
        regions.payload_failed()
        raise
    regions.payload_encoded()
    blobs = regions.take_blobs()
    return data if blobs is None else blobbed_payload(blobs, data)


def _packb(value: Any, default: Any) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True, default=default)
    except SnakepitBridgeError:
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


def decode_msgpack(data: bytes, regions: CallRegions | None = None) -> Any:
    hook = _refuse_tensor_ext if regions is None else regions.decode_ext
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=hook)
    except SnakepitBridgeError:
        raise
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


def _refuse_tensor_ext(code: int, data: bytes) -> Any:
    if 0x10 <= code <= 0x13:
        raise RegionAccessError(
            f"Cannot decode a tensor or table value (msgpack ext {code:#04x}): this payload is "
            "decoded without shared-memory support",
            reason=REGION_ZERO_COPY_DISABLED,
            suggestion="Send tensors only to workers whose capabilities say zero_copy",
        )
    return msgpack.ExtType(code, data)


def _msgpack_default(value: Any) -> Any:
    # msgpack calls this for ints outside the 64-bit range as well as for unknown types.
    if isinstance(value, int) and not isinstance(value, bool):
        raise _integer_out_of_range(value)
    return _convert_foreign(value, "msgpack")


def _json_default(value: Any) -> Any:
    module = type(value).__module__ or ""
    if module.startswith(("pyarrow", "pandas", "torch")):
        raise SerializationError(
            f"Cannot encode {module}.{type(value).__qualname__} as JSON: tensors and tables "
            "cross only in msgpack",
            suggestion="Use the msgpack encoding (the default) to send tensors and tables",
        )
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
            # In msgpack, arrays reach here only when the host does not speak tensors.
            raise SerializationError(
                f"Cannot encode numpy.ndarray (shape {value.shape}, dtype {value.dtype}) as "
                f"{encoding_name}: return arr.tolist() for small arrays; "
                + (
                    "tensors cross only in msgpack"
                    if encoding_name == "JSON"
                    else "arrays cross only in a call from a Snakepit pool, which sets up tensors"
                ),
                suggestion="Return arr.tolist() for small arrays"
                + (", or use the msgpack encoding" if encoding_name == "JSON" else ""),
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
