"""Tensor descriptors from Python: the same 256 bytes as ``ffi/tensor_descriptor.ts`` and
``zig/dlpack.zig`` (DLPack 1.x field set, pointing into a shared-memory region).

``encode`` and ``decode`` are plain Python with the library's checks in the library's order;
``validate`` asks the library to prove the elements fit a payload; ``to_numpy`` builds a
zero-copy array from a region after the region itself checked the descriptor.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .native import STATUS_CODES, NativeLibrary
from .native_errors import SharedMemoryError, error_from_status
from .native_region import NAME_PATTERN

if TYPE_CHECKING:
    import numpy

    from .native_region import Region

DTYPES: Final[dict[str, tuple[int, int]]] = {
    "int8": (0, 8),
    "int16": (0, 16),
    "int32": (0, 32),
    "int64": (0, 64),
    "uint8": (1, 8),
    "uint16": (1, 16),
    "uint32": (1, 32),
    "uint64": (1, 64),
    "float16": (2, 16),
    "float32": (2, 32),
    "float64": (2, 64),
    "bfloat16": (4, 16),
    "complex64": (5, 64),
    "complex128": (5, 128),
    "bool": (6, 8),
}
"""Supported dtypes and their DLPack (code, bits); lanes is always 1."""

FIELDS: Final[dict[str, tuple[int, int]]] = {
    "magic": (0, 4),
    "format_version": (4, 2),
    "encoded_bytes": (6, 2),
    "dlpack_major": (8, 4),
    "dlpack_minor": (12, 4),
    "device_type": (16, 4),
    "device_id": (20, 4),
    "dtype_code": (24, 1),
    "dtype_bits": (25, 1),
    "dtype_lanes": (26, 2),
    "ndim": (28, 4),
    "flags": (32, 8),
    "byte_offset": (40, 8),
    "region_generation": (48, 8),
    "strides_present": (56, 1),
    "region_name_bytes": (57, 1),
    "reserved": (58, 6),
    "shape": (64, 64),
    "strides": (128, 64),
    "region_name": (192, 64),
}
"""The encoded layout (field -> offset, bytes), mirrored from ``zig/dlpack.zig``."""

DESCRIPTOR_BYTES: Final[int] = 256
MAGIC: Final[int] = 0x4C44_5053
FORMAT_VERSION: Final[int] = 1
NDIM_MAX: Final[int] = 8
FLAG_READ_ONLY: Final[int] = 1
FLAG_IS_COPIED: Final[int] = 2
_HEAD: Final = struct.Struct("<IHHIIiiBBHIQQQBB6x")
_DTYPE_BY_CODE: Final[dict[tuple[int, int], str]] = {value: name for name, value in DTYPES.items()}


@dataclass
class TensorDescriptor:
    """A tensor in a shared-memory region."""

    dtype: str
    shape: list[int]
    region_name: str
    region_generation: int
    strides: list[int] | None = None
    byte_offset: int = 0
    read_only: bool = False
    is_copied: bool = False
    dlpack_minor: int = 1


def _invalid(status_name: str, message: str) -> SharedMemoryError:
    return SharedMemoryError(
        f"Cannot decode a tensor descriptor: {message} [{status_name}].",
        op="decode_descriptor",
        status=STATUS_CODES[status_name],
        status_name=status_name,
        path="",
    )


def encode(descriptor: TensorDescriptor) -> bytes:
    """The 256 canonical bytes of ``descriptor``; ``ValueError`` for fields out of range."""
    if descriptor.dtype not in DTYPES:
        raise ValueError(f"Cannot encode a tensor descriptor: unknown dtype {descriptor.dtype!r}")
    shape, strides = list(descriptor.shape), descriptor.strides
    if len(shape) > NDIM_MAX or any(not isinstance(n, int) or n < 0 for n in shape):
        raise ValueError("Cannot encode a tensor descriptor: shape must be at most 8 extents >= 0")
    if strides is not None and len(strides) != len(shape):
        raise ValueError("Cannot encode a tensor descriptor: strides need one entry per dimension")
    if not NAME_PATTERN.fullmatch(descriptor.region_name):
        raise ValueError(
            f"Cannot encode a tensor descriptor: bad region name {descriptor.region_name!r}"
        )
    if descriptor.region_generation < 1 or descriptor.byte_offset < 0:
        raise ValueError("Cannot encode a tensor descriptor: generation >= 1 and byte_offset >= 0")
    code, bits = DTYPES[descriptor.dtype]
    flags = (FLAG_READ_ONLY if descriptor.read_only else 0) | (
        FLAG_IS_COPIED if descriptor.is_copied else 0
    )
    name = descriptor.region_name.encode()
    head = _HEAD.pack(
        MAGIC, FORMAT_VERSION, DESCRIPTOR_BYTES, 1, descriptor.dlpack_minor, 1, 0, code, bits, 1,
        len(shape), flags, descriptor.byte_offset, descriptor.region_generation,
        0 if strides is None else 1, len(name),
    )  # fmt: skip
    padded = lambda values: values + [0] * (NDIM_MAX - len(values))  # noqa: E731
    body = struct.pack("<8q8q", *padded(shape), *padded(list(strides or [])))
    return head + body + name.ljust(64, b"\0")


def decode(encoded: bytes) -> TensorDescriptor:
    """Decodes canonical bytes with the library's structural checks, in the library's order.

    Raises :class:`SharedMemoryError` (``descriptor_malformed``, ``unsupported_dtype``,
    ``unsupported_device``) for bytes the library would refuse.
    """
    if len(encoded) != DESCRIPTOR_BYTES:
        raise _invalid("descriptor_malformed", f"it must be 256 bytes, got {len(encoded)}")
    fields = _HEAD.unpack_from(encoded)
    magic, version, length, major, minor, device, device_id, code, bits, lanes = fields[:10]
    ndim, flags, byte_offset, generation, strides_present, name_length = fields[10:]
    if magic != MAGIC or version != FORMAT_VERSION or length != DESCRIPTOR_BYTES or major != 1:
        raise _invalid("descriptor_malformed", "wrong magic, version, length or DLPack major")
    if device != 1 or device_id != 0:
        raise _invalid("unsupported_device", "the device is not CPU 0")
    dtype = _DTYPE_BY_CODE.get((code, bits))
    if lanes != 1 or dtype is None:
        raise _invalid("unsupported_dtype", f"code {code}, bits {bits}, lanes {lanes}")
    if ndim > NDIM_MAX:
        raise _invalid("descriptor_malformed", f"ndim {ndim} exceeds {NDIM_MAX}")
    if flags & ~(FLAG_READ_ONLY | FLAG_IS_COPIED):
        raise _invalid("descriptor_malformed", "unknown flags")
    if any(encoded[58:64]) or strides_present > 1:
        raise _invalid("descriptor_malformed", "reserved bytes or strides_present")
    name_field = encoded[192:256]
    if name_length == 0 or name_length > 63 or any(name_field[name_length:]):
        raise _invalid("descriptor_malformed", "bad region name length")
    name = name_field[:name_length].decode("utf-8", errors="replace")
    if not NAME_PATTERN.fullmatch(name):
        raise _invalid("descriptor_malformed", "bad region name")
    if generation == 0:
        raise _invalid("descriptor_malformed", "generation 0")
    values = struct.unpack_from("<8q8q", encoded, 64)
    shape, strides = list(values[:8]), list(values[8:])
    for dimension in range(NDIM_MAX):
        used = dimension < ndim
        if shape[dimension] < 0 or (not used and shape[dimension] != 0):
            raise _invalid("descriptor_malformed", f"bad extent in dimension {dimension}")
        if (not used or strides_present == 0) and strides[dimension] != 0:
            raise _invalid("descriptor_malformed", f"stray stride in dimension {dimension}")
    return TensorDescriptor(
        dtype=dtype,
        shape=shape[:ndim],
        region_name=name,
        region_generation=generation,
        strides=strides[:ndim] if strides_present else None,
        byte_offset=byte_offset,
        read_only=bool(flags & FLAG_READ_ONLY),
        is_copied=bool(flags & FLAG_IS_COPIED),
        dlpack_minor=minor,
    )


def validate(library: NativeLibrary, encoded: bytes, payload_bytes: int) -> tuple[int, int]:
    """The library's proof that the elements fit ``payload_bytes``; returns (first, end) bytes."""
    extent = (ctypes.c_uint64 * 2)()
    status = library.functions.snakepit_descriptor_validate(
        encoded or None, len(encoded), payload_bytes, extent
    )
    if status != STATUS_CODES["ok"]:
        raise error_from_status(
            library, "validate_descriptor", status, what="Invalid tensor descriptor"
        )
    return extent[0], extent[1]


def normalize(library: NativeLibrary, encoded: bytes) -> bytes:
    """The library's canonical re-encoding of ``encoded`` (equal for every accepted one)."""
    output = ctypes.create_string_buffer(DESCRIPTOR_BYTES)
    length = ctypes.c_uint32()
    status = library.functions.snakepit_descriptor_normalize(
        encoded or None, len(encoded), output, DESCRIPTOR_BYTES, ctypes.byref(length)
    )
    if status != STATUS_CODES["ok"]:
        raise error_from_status(
            library, "normalize_descriptor", status, what="Invalid tensor descriptor"
        )
    return output.raw[: length.value]


def to_numpy(region: Region, encoded: bytes) -> numpy.ndarray:
    """A zero-copy numpy array for ``encoded`` over ``region``, after the region proved that
    every element lies in its payload (name, generation, bounds, alignment). Read-only when the
    descriptor says READ_ONLY. ``bfloat16`` has no numpy dtype and is refused."""
    import numpy

    region.check_descriptor(encoded)
    descriptor = decode(encoded)
    if descriptor.dtype == "bfloat16":
        raise ValueError("Cannot build a numpy array: numpy has no bfloat16 dtype")
    dtype = numpy.dtype(descriptor.dtype)
    shape = tuple(descriptor.shape)
    if descriptor.strides is None:
        strides = None
    else:
        strides = tuple(stride * dtype.itemsize for stride in descriptor.strides)
    view = region.view()
    # A read-only descriptor gets a read-only buffer: `writeable = True` cannot be set back.
    base = numpy.frombuffer(view.toreadonly() if descriptor.read_only else view, dtype=numpy.uint8)
    array = numpy.ndarray(
        shape, dtype=dtype, buffer=base, offset=descriptor.byte_offset, strides=strides
    )
    if descriptor.read_only:
        array.flags.writeable = False
    return array
