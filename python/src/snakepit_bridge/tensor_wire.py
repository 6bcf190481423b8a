"""The wire forms of tensors and Arrow tables inside msgpack payloads (no shared-memory state).

Four msgpack ext types, the same in TypeScript:

- ``0x10`` SHARED_TENSOR ``[name, generation, descriptor (256 bytes), token (32 bytes)]``
- ``0x11`` INLINE_TENSOR ``[dtype, shape, data (C order, little-endian), flags]``
- ``0x12`` SHARED_ARROW ``[name, generation, descriptor, token]``: the descriptor is a 1-D
  ``uint8`` tensor at byte offset 0 over an Arrow IPC stream
- ``0x13`` INLINE_ARROW ``[ipc stream, flags]``

An inline value of at least the chunked-copy threshold carries, instead of its bytes, an ext
``0x14`` naming a blob that travels beside the call (``blobs``).

A shared value's token is an HMAC-SHA256 under the pool's secret over the call, the direction
(``arg`` host to worker, ``result`` worker to host), the region, its generation and the
descriptor, so a value is good for one call, one direction and one region state only.

numpy, pyarrow and pandas are imported only by the functions that handle their values.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import msgpack

from snakepit_bridge.errors import SerializationError

if TYPE_CHECKING:
    import numpy
    import pyarrow

EXT_SHARED_TENSOR: Final[int] = 0x10
EXT_INLINE_TENSOR: Final[int] = 0x11
EXT_SHARED_ARROW: Final[int] = 0x12
EXT_INLINE_ARROW: Final[int] = 0x13
EXT_NAMES: Final[dict[int, str]] = {
    EXT_SHARED_TENSOR: "SHARED_TENSOR",
    EXT_INLINE_TENSOR: "INLINE_TENSOR",
    EXT_SHARED_ARROW: "SHARED_ARROW",
    EXT_INLINE_ARROW: "INLINE_ARROW",
}
FLAG_READ_ONLY: Final[int] = 1
FLAG_IS_COPIED: Final[int] = 2
ROLE_ARG: Final[bytes] = b"arg"
ROLE_RESULT: Final[bytes] = b"result"
TOKEN_BYTES: Final[int] = 32
SECRET_BYTES: Final[int] = 32
DESCRIPTOR_BYTES: Final[int] = 256
NDIM_MAX: Final[int] = 8
_TOKEN_DOMAIN: Final[bytes] = b"snakepit-region-v1\0"

WIRE_DTYPES: Final[frozenset[str]] = frozenset(
    {
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "bfloat16", "bool",
    }
)  # fmt: skip
"""The dtypes that cross the wire; ``native_descriptor`` names them the same way."""


def region_token(
    secret: bytes, role: bytes, request_id: str, name: str, generation: int, descriptor: bytes
) -> bytes:
    """The 32-byte token that binds a shared value to one call, direction and region state."""
    message = b"\0".join(
        (role, request_id.encode(), name.encode(), str(generation).encode(), descriptor)
    )
    return hmac.new(secret, _TOKEN_DOMAIN + message, hashlib.sha256).digest()


def shared_ext(code: int, name: str, generation: int, descriptor: bytes, token: bytes) -> Any:
    """The msgpack ext of a shared tensor or table."""
    data = msgpack.packb([name, generation, descriptor, token], use_bin_type=True)
    return msgpack.ExtType(code, data)


def unpack_shared(code: int, data: bytes) -> tuple[str, int, bytes, bytes]:
    """``(name, generation, descriptor, token)`` of a shared ext; SerializationError if bad."""
    fields = _unpack_ext(code, data)
    if (
        len(fields) != 4
        or not isinstance(fields[0], str)
        or not isinstance(fields[1], int)
        or isinstance(fields[1], bool)
        or not isinstance(fields[2], bytes)
        or not isinstance(fields[3], bytes)
    ):
        raise _malformed(code, "it must be [name: str, generation: int, descriptor, token: bin]")
    return fields[0], fields[1], fields[2], fields[3]


def wire_dtype(array: numpy.ndarray) -> str:
    """The wire name of ``array``'s dtype; SerializationError naming the dtype when it has none.

    numpy has no ``bfloat16``; an ``ml_dtypes`` bfloat16 array (what JAX and others return)
    crosses as ``bfloat16``.
    """
    dtype = array.dtype
    name = dtype.name
    if name in WIRE_DTYPES and dtype.kind in "biuf" or name == "bfloat16" and dtype.itemsize == 2:
        return name
    raise SerializationError(
        f"Cannot send an array of dtype {dtype} (shape {array.shape}): tensors cross as "
        f"{', '.join(sorted(WIRE_DTYPES))}",
        suggestion=_dtype_advice(dtype.kind),
    )


def storage_dtype(name: str) -> numpy.dtype:
    """The numpy dtype that holds wire dtype ``name``: ``bfloat16`` is held as raw ``uint16``."""
    import numpy

    return numpy.dtype("<u2" if name == "bfloat16" else name).newbyteorder("<")


Offer = Callable[[Any], Any]
"""Keeps a big value's bytes (a buffer) as a blob; the ext that names it (``BlobStore.offer``)."""
Claim = Callable[[Any], Any]
"""The bytes of a blob reference ext, or the value itself when it is not one."""


def inline_tensor_ext(
    array: numpy.ndarray, dtype_name: str, *, is_copied: bool, offer: Offer | None = None
) -> Any:
    """INLINE_TENSOR of ``array``: its elements in C order, little-endian.

    With ``offer``, the elements go to a blob (see ``blobs``) instead of into the payload.
    """
    import numpy

    if array.ndim > NDIM_MAX:
        raise _too_many_dimensions(array)
    storage = storage_dtype(dtype_name)
    if array.dtype != storage:
        # Big-endian arrays are swapped; bfloat16 is reinterpreted as its raw 16-bit storage.
        array = array.view(numpy.uint16) if dtype_name == "bfloat16" else array.astype(storage)
    flags = FLAG_IS_COPIED if is_copied else 0
    if offer is not None:
        # One copy, as inline bytes would make: the tool may change its array after returning.
        elements = offer(numpy.array(array, order="C", copy=True).reshape(-1).view(numpy.uint8))
    else:
        elements = array.tobytes(order="C")
    fields = [dtype_name, list(array.shape), elements, flags]
    return msgpack.ExtType(EXT_INLINE_TENSOR, msgpack.packb(fields, use_bin_type=True))


def inline_tensor_value(data: bytes, claim: Claim | None = None) -> numpy.ndarray:
    """The writable array of an INLINE_TENSOR (read-only when flagged); its bytes are copied.

    ``claim`` resolves a blob reference in place of the bytes; a blob is used without a copy.
    """
    import numpy

    fields = _unpack_ext(EXT_INLINE_TENSOR, data)
    if len(fields) == 4 and claim is not None:
        fields[2] = claim(fields[2])
    if (
        len(fields) != 4
        or not isinstance(fields[2], (bytes, bytearray))
        or not isinstance(fields[3], int)
    ):
        raise _malformed(EXT_INLINE_TENSOR, "it must be [dtype, shape, data: bin, flags: int]")
    dtype_name, shape, payload, flags = fields
    dtype = _checked_dtype(EXT_INLINE_TENSOR, dtype_name)
    extents = _checked_shape(EXT_INLINE_TENSOR, shape)
    count = 1
    for extent in extents:
        count *= extent
    if count * dtype.itemsize != len(payload):
        raise _malformed(
            EXT_INLINE_TENSOR,
            f"shape {extents} of {dtype_name} needs {count * dtype.itemsize} bytes, "
            f"got {len(payload)}",
        )
    owned = payload if isinstance(payload, bytearray) else bytearray(payload)
    array = numpy.frombuffer(owned, dtype=dtype).reshape(extents)
    if flags & FLAG_READ_ONLY:
        array.flags.writeable = False
    return array


def table_of(value: Any) -> pyarrow.Table | pyarrow.RecordBatch:
    """A pyarrow Table or RecordBatch as it is; a pandas DataFrame converted to a Table."""
    import pyarrow

    if isinstance(value, (pyarrow.Table, pyarrow.RecordBatch)):
        return value
    try:
        return pyarrow.Table.from_pandas(value)
    except (pyarrow.ArrowException, TypeError, ValueError) as error:
        raise SerializationError(
            f"Cannot send a pandas DataFrame of shape {value.shape} as an Arrow table: {error}",
            suggestion="Convert object columns to str, numbers or bytes before returning them",
        ) from None


def ipc_bytes(table: pyarrow.Table | pyarrow.RecordBatch) -> int:
    """The length of ``table``'s Arrow IPC stream, measured without writing it."""
    import pyarrow

    sink = pyarrow.MockOutputStream()
    write_ipc(table, sink)
    return int(sink.size())


def write_ipc(table: pyarrow.Table | pyarrow.RecordBatch, sink: Any) -> None:
    """Writes ``table`` as an Arrow IPC stream (schema, batches, end-of-stream) to ``sink``."""
    import pyarrow

    with pyarrow.ipc.new_stream(sink, table.schema) as writer:
        if isinstance(table, pyarrow.RecordBatch):
            writer.write_batch(table)
        else:
            writer.write_table(table)


def inline_arrow_ext(
    table: pyarrow.Table | pyarrow.RecordBatch, *, is_copied: bool, offer: Offer | None = None
) -> Any:
    """INLINE_ARROW of ``table``; with ``offer``, its IPC stream goes to a blob."""
    import pyarrow

    sink = pyarrow.BufferOutputStream()
    write_ipc(table, sink)
    buffer = sink.getvalue()
    stream = offer(buffer) if offer is not None else buffer.to_pybytes()
    fields = [stream, FLAG_IS_COPIED if is_copied else 0]
    return msgpack.ExtType(EXT_INLINE_ARROW, msgpack.packb(fields, use_bin_type=True))


def read_ipc(buffer: Any, code: int) -> pyarrow.Table:
    """The table of an IPC stream in ``buffer`` (a pyarrow Buffer or bytes), without copying."""
    import pyarrow

    try:
        return pyarrow.ipc.open_stream(buffer).read_all()
    except (pyarrow.ArrowException, ValueError) as error:
        raise _malformed(code, f"its Arrow IPC stream does not read: {error}") from None


def inline_arrow_value(data: bytes, claim: Claim | None = None) -> pyarrow.Table:
    """The table of an INLINE_ARROW (``claim`` as for ``inline_tensor_value``)."""
    import pyarrow

    fields = _unpack_ext(EXT_INLINE_ARROW, data)
    if len(fields) == 2 and claim is not None:
        fields[0] = claim(fields[0])
    if (
        len(fields) != 2
        or not isinstance(fields[0], (bytes, bytearray))
        or not isinstance(fields[1], int)
    ):
        raise _malformed(EXT_INLINE_ARROW, "it must be [ipc: bin, flags: int]")
    return read_ipc(pyarrow.py_buffer(fields[0]), EXT_INLINE_ARROW)


def check_descriptor_dtype(name: str) -> None:
    """SerializationError for a descriptor dtype the wire does not carry (complex)."""
    if name not in WIRE_DTYPES:
        raise SerializationError(
            f"Cannot receive a shared tensor of dtype {name}: tensors cross as "
            f"{', '.join(sorted(WIRE_DTYPES))}"
        )


def _checked_dtype(code: int, name: Any) -> numpy.dtype:
    if not isinstance(name, str) or name not in WIRE_DTYPES:
        raise _malformed(code, f"dtype {name!r} is not one of {', '.join(sorted(WIRE_DTYPES))}")
    return storage_dtype(name)


def _checked_shape(code: int, shape: Any) -> tuple[int, ...]:
    if (
        not isinstance(shape, list)
        or len(shape) > NDIM_MAX
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise _malformed(code, f"shape must be at most {NDIM_MAX} extents >= 0, got {shape!r}")
    return tuple(shape)


def _unpack_ext(code: int, data: bytes) -> list[Any]:
    try:
        fields = msgpack.unpackb(data, raw=False)
    except Exception as error:  # noqa: BLE001 - every malformed ext becomes one error class
        raise _malformed(code, f"{type(error).__name__}: {error}") from None
    if not isinstance(fields, list):
        raise _malformed(code, f"it must be a msgpack array, got {type(fields).__name__}")
    return fields


def _malformed(code: int, detail: str) -> SerializationError:
    return SerializationError(
        f"Cannot decode a {EXT_NAMES.get(code, hex(code))} value (msgpack ext {code:#04x}): "
        f"{detail}",
        suggestion="Both sides must use the same Snakepit version",
    )


def _too_many_dimensions(array: numpy.ndarray) -> SerializationError:
    return SerializationError(
        f"Cannot send an array of shape {array.shape}: tensors have at most {NDIM_MAX} dimensions",
        suggestion="Reshape the array to at most 8 dimensions before returning it",
    )


def _dtype_advice(kind: str) -> str:
    if kind == "c":
        return "Send complex arrays as two float arrays: numpy.real(a) and numpy.imag(a)"
    if kind in "Mm":
        return "Send datetimes as int64 with arr.astype('int64') and say the unit"
    if kind in "OUS":
        return "Send strings and objects as a list (arr.tolist()) or as an Arrow table"
    return "Convert the array with arr.astype(...) to one of the supported dtypes"
