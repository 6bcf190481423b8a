"""`CallRegions`: the shared-memory regions of one call, made by `RegionBroker.call`.

Arguments: a shared value's token is checked before its region is opened; the region then
proves natively that the descriptor fits it (name, generation, bounds, alignment) before any
array is made over it. Results: an array over a region that `alloc_tensor` made for this call
goes back as it is; any other array or table at or above the threshold is copied once into a
new region; smaller ones travel inline. Regions go to the broker for hand-over only once the
whole payload encoded.

``bfloat16`` has no numpy dtype: such a tensor arrives as a ``uint16`` array over its raw
storage (with torch: ``torch.from_dlpack(a).view(torch.bfloat16)``), and ``alloc_tensor(shape,
"bfloat16")`` returns one that goes back as ``bfloat16``.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snakepit_bridge import tensor_wire
from snakepit_bridge.blobs import blob_ext, blob_ref
from snakepit_bridge._tensor_support import (
    access_error,
    dtype_name,
    shape_of,
    torch_array,
    view_of,
)
from snakepit_bridge.errors import (
    REGION_TOKEN_INVALID,
    REGION_ZERO_COPY_DISABLED,
    RegionAccessError,
    SerializationError,
)
from snakepit_bridge.tensor_wire import (
    EXT_INLINE_ARROW,
    EXT_INLINE_TENSOR,
    EXT_SHARED_ARROW,
    EXT_SHARED_TENSOR,
)

if TYPE_CHECKING:
    import numpy

    from snakepit_bridge.native_region import Region
    from snakepit_bridge.tensors import RegionBroker

logger = logging.getLogger("snakepit_bridge.tensors")


@dataclass
class _Allocation:
    region: Region
    start: int
    end: int
    dtype_name: str


class CallRegions:
    """The regions one call opened (arguments) and created (results); `close()` after the call."""

    __slots__ = (
        "_broker", "request_id", "_opened", "_allocated", "_outgoing", "_blobs", "_closed"
    )  # fmt: skip

    def __init__(self, broker: RegionBroker, request_id: str) -> None:
        self._broker = broker
        self.request_id = request_id
        self._opened: list[Region] | None = None
        self._allocated: list[_Allocation] | None = None
        self._outgoing: list[tuple[Region, bool]] | None = None
        self._blobs: list[tuple[str, int]] | None = None
        self._closed = False

    # --- arguments ------------------------------------------------------------------------

    def decode_ext(self, code: int, data: bytes) -> Any:
        """msgpack's ``ext_hook``: the value of a tensor or table ext."""
        if code == EXT_INLINE_TENSOR:
            return tensor_wire.inline_tensor_value(data, self._claim)
        if code == EXT_INLINE_ARROW:
            return tensor_wire.inline_arrow_value(data, self._claim)
        if code in (EXT_SHARED_TENSOR, EXT_SHARED_ARROW):
            return self._open_shared(code, data)
        raise SerializationError(
            f"Cannot decode msgpack ext type {code:#04x} ({len(data)} bytes): this worker knows "
            "0x10-0x13 (tensors and Arrow tables)",
            suggestion="Both sides must use the same Snakepit version",
        )

    def _claim(self, value: Any) -> Any:
        """The uploaded bytes of a blob reference (``blobs``), or ``value`` as it is."""
        ref = blob_ref(value)
        if ref is None:
            return value
        blob_id, nbytes = ref
        if not blob_id.startswith(self.request_id + "."):
            raise SerializationError(
                f"Cannot decode a chunked value: blob {blob_id!r} belongs to another call than "
                f"{self.request_id!r}",
                suggestion="Each call names only the blobs uploaded for it",
            )
        return self._broker.blobs.claim(blob_id, nbytes)

    def _offer(self, data: Any) -> Any:
        """Keeps a result value's bytes as an outbound blob; the ext that names it."""
        ref = self._broker.blobs.offer(self.request_id, data)
        if self._blobs is None:
            self._blobs = []
        self._blobs.append(ref)
        return blob_ext(ref)

    def take_blobs(self) -> list[tuple[str, int]] | None:
        """The blobs the payload just encoded names (the host fetches them before decoding)."""
        blobs, self._blobs = self._blobs, None
        return blobs

    def _open_shared(self, code: int, data: bytes) -> Any:
        from snakepit_bridge.native_region import Region

        name, generation, descriptor, token = tensor_wire.unpack_shared(code, data)
        broker = self._broker
        if broker.library is None or broker.secret is None:
            raise RegionAccessError(
                f"Cannot receive shared-memory value in region {name}: zero-copy is disabled in "
                f"this worker ({broker.disabled_reason})",
                reason=REGION_ZERO_COPY_DISABLED,
                region_name=name,
                suggestion="Send the value inline, or start the pool with zero-copy enabled",
            )
        expected = tensor_wire.region_token(
            broker.secret, tensor_wire.ROLE_ARG, self.request_id, name, generation, descriptor
        )
        if not hmac.compare_digest(expected, token):
            raise RegionAccessError(
                f"Cannot open region {name} (generation {generation}): its token is not valid "
                f"for argument values of request {self.request_id!r}; it was forged, altered, "
                "or replayed from another call",
                reason=REGION_TOKEN_INVALID,
                region_name=name,
                suggestion="Send each shared value with the token made for this very call",
            )
        try:
            region = Region.open(broker.library, name, generation=generation)
        except Exception as error:  # noqa: BLE001 - mapped to the reasons the host decides on
            raise access_error(error, name, "open") from None
        try:
            value = view_of(code, region, descriptor)
        except BaseException:
            broker.release_later(region)
            raise
        if self._opened is None:
            self._opened = []
        self._opened.append(region)
        return value

    # --- results --------------------------------------------------------------------------

    def alloc_tensor(self, shape: Any, dtype: Any) -> numpy.ndarray:
        """A zeroed C-contiguous array in a new shared-memory region that a result can return
        without a copy. An ordinary numpy array when zero-copy is disabled (the result then
        travels inline). Raises ``ValueError`` for a bad shape or dtype."""
        import numpy

        name = dtype_name(dtype)
        extents = shape_of(shape)
        storage = tensor_wire.storage_dtype(name)
        broker = self._broker
        if not broker.enabled or self._closed:
            return numpy.zeros(extents, storage)
        from snakepit_bridge.native_region import Region

        nbytes = int(numpy.prod(extents, dtype=numpy.int64)) * storage.itemsize
        region = Region.create(broker.library, max(nbytes, 1), instance=broker.instance)
        try:
            array = region.numpy(storage, extents)
            start = array.__array_interface__["data"][0]
        except BaseException:
            broker.release_later(region)
            raise
        if self._allocated is None:
            self._allocated = []
        self._allocated.append(_Allocation(region, start, start + region.payload_bytes, name))
        return array

    def encode_default(self, value: Any) -> Any:
        """msgpack's ``default`` for tensors and tables: an ext, or None for other values.

        Looks at the type's module before importing anything, so calls without tensors never
        import numpy, pyarrow, pandas or torch.
        """
        if not self._broker.wire:
            return None
        module = type(value).__module__
        if module.startswith("numpy"):
            import numpy

            return self._encode_array(value, None) if isinstance(value, numpy.ndarray) else None
        if module.startswith("pyarrow"):
            import pyarrow

            if isinstance(value, (pyarrow.Table, pyarrow.RecordBatch)):
                return self._encode_table(value)
            return None
        if module.startswith("pandas"):
            import pandas

            if isinstance(value, pandas.DataFrame):
                return self._encode_table(tensor_wire.table_of(value))
            return None
        if module.startswith("torch"):
            import torch

            if isinstance(value, torch.Tensor):
                return self._encode_array(*torch_array(value, torch))
        return None

    def payload_encoded(self) -> None:
        """The payload holding this call's new shared values encoded: hand their regions over."""
        outgoing, self._outgoing = self._outgoing, None
        for region, allocated in outgoing or ():
            if allocated and self._allocated is not None:
                self._allocated = [a for a in self._allocated if a.region is not region]
            self._broker.hand_over(region)

    def payload_failed(self) -> None:
        """The payload did not encode: the copies made for it are released at once."""
        blobs, self._blobs = self._blobs, None
        if blobs:
            self._broker.blobs.forget(blobs)
        outgoing, self._outgoing = self._outgoing, None
        for region, allocated in outgoing or ():
            if not allocated:
                self._broker.release_later(region)

    def close(self) -> None:
        """Closes the call's argument regions and unsent allocations; idempotent, never raises.

        A region whose arrays a tool kept stays open in the broker until they are gone.
        """
        broker = self._broker
        if not self._closed:
            self._closed = True
            if self._opened or self._allocated or self._outgoing or self._blobs:
                self._release_all()
            broker.blobs.discard_call(self.request_id)
        broker.sweep_if_due()

    def _release_all(self) -> None:
        self.payload_failed()
        opened, self._opened = self._opened, None
        allocated, self._allocated = self._allocated, None
        for region in opened or ():
            self._broker.release_later(region)
        for allocation in allocated or ():
            self._broker.release_later(allocation.region)

    def _encode_array(self, array: numpy.ndarray, wire_name: str | None) -> Any:
        if array.ndim > tensor_wire.NDIM_MAX:
            raise tensor_wire._too_many_dimensions(array)
        allocation = self._allocation_of(array)
        if allocation is not None and not self._sending(allocation.region):
            # A region crosses at most once per payload: the host adopts it (bumping its
            # generation) on its first reference, which would make a second one stale.
            if wire_name is None and allocation.dtype_name == "bfloat16":
                wire_name = "bfloat16" if array.dtype.name == "uint16" else None
            name = wire_name or tensor_wire.wire_dtype(array)
            ext = self._shared_in_place(allocation, array, name)
            if ext is not None:
                return ext
        name = wire_name or tensor_wire.wire_dtype(array)
        broker = self._broker
        offer = self._offer if array.nbytes >= broker.blobs.threshold_bytes else None
        if array.nbytes < broker.threshold_bytes:
            return tensor_wire.inline_tensor_ext(array, name, is_copied=False, offer=offer)
        if broker.enabled:
            ext = self._shared_copy(array, name)
            if ext is not None:
                return ext
        return tensor_wire.inline_tensor_ext(array, name, is_copied=True, offer=offer)

    def _allocation_of(self, array: numpy.ndarray) -> _Allocation | None:
        if not self._allocated or array.size == 0:
            return None
        low = high = array.__array_interface__["data"][0]
        for extent, stride in zip(array.shape, array.strides):
            reach = (extent - 1) * stride
            low, high = (low + reach, high) if reach < 0 else (low, high + reach)
        high += array.itemsize
        for allocation in self._allocated:
            if allocation.start <= low and high <= allocation.end:
                return allocation
        return None

    def _shared_in_place(self, allocation: _Allocation, array: Any, name: str) -> Any:
        from snakepit_bridge import native_descriptor
        from snakepit_bridge.native_errors import SharedMemoryError

        itemsize = array.itemsize
        strides = None
        if not array.flags.c_contiguous:
            if any(stride % itemsize for stride in array.strides):
                return None  # Not expressible in elements: the caller copies.
            strides = [stride // itemsize for stride in array.strides]
        region = allocation.region
        offset = array.__array_interface__["data"][0] - allocation.start
        descriptor = native_descriptor.TensorDescriptor(
            dtype=name,
            shape=list(array.shape),
            region_name=region.name,
            region_generation=region.info().generation,
            strides=strides,
            byte_offset=offset,
        )
        encoded = native_descriptor.encode(descriptor)
        try:
            region.check_descriptor(encoded)
        except SharedMemoryError:
            return None  # Misaligned for the descriptor format: the caller copies.
        self._send(region, allocated=True)
        return self._shared_ext(EXT_SHARED_TENSOR, region, descriptor.region_generation, encoded)

    def _shared_copy(self, array: Any, name: str) -> Any:
        import numpy

        from snakepit_bridge import native_descriptor

        region = self._create(array.nbytes)
        if region is None:
            return None
        try:
            storage = tensor_wire.storage_dtype(name)
            target = region.numpy(storage, array.shape)
            source = array.view(numpy.uint16) if name == "bfloat16" else array
            numpy.copyto(target, source, casting="equiv")
            del target
            generation = region.info().generation
            descriptor = native_descriptor.TensorDescriptor(
                dtype=name,
                shape=list(array.shape),
                region_name=region.name,
                region_generation=generation,
                is_copied=True,
            )
            encoded = native_descriptor.encode(descriptor)
        except BaseException:
            self._broker.release_later(region)
            raise
        self._send(region, allocated=False)
        return self._shared_ext(EXT_SHARED_TENSOR, region, generation, encoded)

    def _encode_table(self, table: Any) -> Any:
        size = tensor_wire.ipc_bytes(table)
        broker = self._broker
        if size >= broker.threshold_bytes and broker.enabled:
            ext = self._shared_table(table, size)
            if ext is not None:
                return ext
        offer = self._offer if size >= broker.blobs.threshold_bytes else None
        return tensor_wire.inline_arrow_ext(
            table, is_copied=size >= broker.threshold_bytes, offer=offer
        )

    def _shared_table(self, table: Any, size: int) -> Any:
        import pyarrow

        from snakepit_bridge import native_descriptor

        region = self._create(size)
        if region is None:
            return None
        try:
            buffer = pyarrow.py_buffer(region.view())
            writer = pyarrow.FixedSizeBufferWriter(buffer)
            tensor_wire.write_ipc(table, writer)
            writer.close()
            del writer, buffer
            generation = region.info().generation
            descriptor = native_descriptor.TensorDescriptor(
                dtype="uint8", shape=[size], region_name=region.name, region_generation=generation
            )
            encoded = native_descriptor.encode(descriptor)
        except BaseException:
            self._broker.release_later(region)
            raise
        self._send(region, allocated=False)
        return self._shared_ext(EXT_SHARED_ARROW, region, generation, encoded)

    def _create(self, nbytes: int) -> Region | None:
        from snakepit_bridge.native_errors import SharedMemoryError
        from snakepit_bridge.native_region import Region

        broker = self._broker
        try:
            return Region.create(broker.library, max(nbytes, 1), instance=broker.instance)
        except SharedMemoryError as error:
            # The value still reaches the host, inline, when shared memory is short.
            logger.warning("sending %d bytes inline: %s", nbytes, error)
            return None

    def _send(self, region: Region, *, allocated: bool) -> None:
        if self._outgoing is None:
            self._outgoing = []
        self._outgoing.append((region, allocated))

    def _sending(self, region: Region) -> bool:
        return self._outgoing is not None and any(sent is region for sent, _ in self._outgoing)

    def _shared_ext(self, code: int, region: Region, generation: int, encoded: bytes) -> Any:
        secret = self._broker.secret
        if secret is None:
            raise RuntimeError("a broker without a secret cannot be enabled")
        token = tensor_wire.region_token(
            secret, tensor_wire.ROLE_RESULT, self.request_id, region.name, generation, encoded
        )
        return tensor_wire.shared_ext(code, region.name, generation, encoded, token)
