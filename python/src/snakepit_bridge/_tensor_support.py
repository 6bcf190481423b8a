"""Checks and conversions behind `CallRegions` (tensor_call.py): the native validation of an
argument's descriptor and its mapping onto `RegionAccessError` reasons, dtype and shape
arguments of `alloc_tensor`, and torch tensors as numpy arrays."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snakepit_bridge import tensor_wire
from snakepit_bridge.errors import REGION_DESCRIPTOR_INVALID, REGION_UNAVAILABLE, RegionAccessError
from snakepit_bridge.tensor_wire import EXT_SHARED_ARROW

if TYPE_CHECKING:
    import numpy

    from snakepit_bridge.native_region import Region

# Statuses of Region.open / check_descriptor that mean "this region state is gone".
_UNAVAILABLE_STATUSES = frozenset(
    {"not_found", "generation_mismatch", "region_released", "not_snakepit_region", "invalid_name"}
)


def view_of(code: int, region: Region, encoded: bytes) -> Any:
    """The array (or table) ``encoded`` describes over ``region``, after native validation."""
    from snakepit_bridge import native_descriptor

    try:
        region.check_descriptor(encoded)
        descriptor = native_descriptor.decode(encoded)
    except Exception as error:  # noqa: BLE001 - mapped to the reasons the host decides on
        raise access_error(error, region.name, "check") from None
    if descriptor.dtype not in tensor_wire.WIRE_DTYPES:
        raise _invalid(region.name, f"dtype {descriptor.dtype} does not cross the wire")
    if code == EXT_SHARED_ARROW:
        if descriptor.dtype != "uint8" or len(descriptor.shape) != 1 or descriptor.strides:
            raise _invalid(region.name, "an Arrow stream must be a 1-D uint8 tensor")
        if descriptor.byte_offset != 0:
            raise _invalid(region.name, "an Arrow stream must start at byte offset 0")
    if descriptor.dtype == "bfloat16":
        # Same size and bounds as uint16: validated above, viewed as its raw storage.
        encoded = encoded[:24] + bytes(native_descriptor.DTYPES["uint16"]) + encoded[26:]
    array = native_descriptor.to_numpy(region, encoded)
    if code == EXT_SHARED_ARROW:
        import pyarrow

        return tensor_wire.read_ipc(pyarrow.py_buffer(array), code)
    return array


def access_error(error: Exception, name: str, action: str) -> RegionAccessError:
    status = getattr(error, "status_name", "") or ""
    if status in _UNAVAILABLE_STATUSES or (action == "open" and status != ""):
        return RegionAccessError(
            f"Cannot {action} region {name}: it is not available [{status}]: {error}",
            reason=REGION_UNAVAILABLE,
            region_name=name,
            status_name=status,
            suggestion="The host must keep the region, at this generation, until the call ends",
        )
    if isinstance(error, ValueError) and action == "open":
        return RegionAccessError(
            f"Cannot open region {name}: {error}",
            reason=REGION_UNAVAILABLE,
            region_name=name,
            status_name="invalid_name",
        )
    return _invalid(name, f"{error}", status)


def _invalid(name: str, detail: str, status: str = "") -> RegionAccessError:
    return RegionAccessError(
        f"Cannot use the tensor descriptor for region {name}: {detail}",
        reason=REGION_DESCRIPTOR_INVALID,
        region_name=name,
        status_name=status,
        suggestion="Describe only elements inside the region, with a supported dtype",
    )


def allocate_plain(shape: Any, dtype: Any) -> numpy.ndarray:
    """What `alloc_tensor` returns without shared memory: a zeroed ordinary array."""
    import numpy

    name = dtype_name(dtype)
    return numpy.zeros(shape_of(shape), tensor_wire.storage_dtype(name))


def dtype_name(dtype: Any) -> str:
    if dtype == "bfloat16":
        return "bfloat16"
    import numpy

    try:
        name = numpy.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in tensor_wire.WIRE_DTYPES:
        raise ValueError(
            f"Cannot allocate a tensor: dtype must be one of "
            f"{', '.join(sorted(tensor_wire.WIRE_DTYPES))}, received {dtype!r}"
        )
    return name


def shape_of(shape: Any) -> tuple[int, ...]:
    extents = (shape,) if isinstance(shape, int) else tuple(shape)
    if len(extents) > tensor_wire.NDIM_MAX or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in extents
    ):
        raise ValueError(
            f"Cannot allocate a tensor: shape must be at most {tensor_wire.NDIM_MAX} integers "
            f">= 0, received {shape!r}"
        )
    return extents


def torch_array(tensor: Any, torch: Any) -> tuple[Any, str | None]:
    """A numpy view of a CPU tensor (a GPU tensor is copied to the CPU first)."""
    tensor = tensor.detach().cpu().resolve_conj().resolve_neg()
    if tensor.dtype == torch.bfloat16:
        import numpy

        return tensor.view(torch.int16).numpy().view(numpy.uint16), "bfloat16"
    return tensor.numpy(), None
