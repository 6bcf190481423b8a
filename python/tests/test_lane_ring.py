"""The fast lane's worker end: attaching to a lane region, and reading (or refusing) its slots
and frames, fuzzed; against the layout of src/bridge/lane/ring.ts (see lane_host.py)."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from lane_host import (
    SLOT_BYTES,
    SLOT_COUNT,
    HostLane,
    call,
    host,  # noqa: F401 - a fixture
    instance,  # noqa: F401 - a fixture
    library,  # noqa: F401 - a fixture
    mutate_slot,
    packb,
    write_header,
)

from snakepit_bridge import native
from snakepit_bridge.lane import (
    HEADER_BYTES,
    LANE_VERSION,
    REQ_CALL,
    REQ_CANCEL,
    REQ_CREDIT,
    SLOT_HEADER_BYTES,
    U32_MASK,
    Lane,
    LaneProtocolError,
    Ring,
    decode_frame,
)
from snakepit_bridge.native_region import Region

# --- attaching ------------------------------------------------------------------------------


def lane_region(library: native.NativeLibrary, instance: str, **header: Any) -> Region:
    region = Region.create(library, HEADER_BYTES + 2 * SLOT_BYTES * SLOT_COUNT, instance=instance)
    view = region.view()
    write_header(view, **{"epoch": 0x1234_5678, **header})
    view.release()
    return region


def test_lane_attaches_to_a_region_the_host_initialized(
    library: native.NativeLibrary, host: HostLane
) -> None:
    lane = Lane(library, host.name, instance=host.instance)
    try:
        assert lane.epoch == host.epoch
        assert lane.slot_count == SLOT_COUNT
        assert lane.requests.capacity == SLOT_BYTES - SLOT_HEADER_BYTES
    finally:
        lane.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"magic": 0x4E4C5054}, "is not a fast lane (magic 0x4e4c5054)"),
        ({"magic": 0}, "is not a fast lane (magic 0x0)"),
        ({"epoch": 0}, "has a bad layout: epoch 0x0, 8 slots of 512 bytes"),
        ({"slot_count": 6}, "has a bad layout: epoch 0x12345678, 6 slots of 512 bytes"),
        ({"slot_count": 0}, "has a bad layout: epoch 0x12345678, 0 slots"),
        ({"slot_bytes": 100}, "has a bad layout: epoch 0x12345678, 8 slots of 100 bytes"),
        ({"slot_bytes": 516}, "8 slots of 516 bytes"),
        ({"slot_count": 16}, "16 slots of 512 bytes in a"),
        ({"slot_bytes": 1024}, "8 slots of 1024 bytes in a"),
    ],
)
def test_lane_refuses_a_region_with_a_bad_header(
    library: native.NativeLibrary, instance: str, header: dict[str, int], expected: str
) -> None:
    with lane_region(library, instance, **header) as region:
        with pytest.raises(LaneProtocolError) as caught:
            Lane(library, region.name, instance=instance)
    message = str(caught.value)
    assert region.name in message
    assert expected in message


def test_lane_refuses_a_layout_larger_than_the_payload_naming_the_payload_size(
    library: native.NativeLibrary, instance: str
) -> None:
    with lane_region(library, instance, slot_count=SLOT_COUNT * 2) as region:
        with pytest.raises(LaneProtocolError, match="bad layout") as caught:
            Lane(library, region.name, instance=instance)
        assert f"in a {region.payload_bytes}-byte payload" in str(caught.value)


def test_lane_refuses_another_protocol_version_naming_both_and_the_fix(
    library: native.NativeLibrary, instance: str
) -> None:
    with lane_region(library, instance, version=LANE_VERSION + 1) as region:
        with pytest.raises(LaneProtocolError) as caught:
            Lane(library, region.name, instance=instance)
    message = str(caught.value)
    assert f"protocol {LANE_VERSION + 1}" in message
    assert f"this worker speaks {LANE_VERSION}" in message
    assert "install matching versions of snakepit and snakepit-bridge" in message


def test_a_refused_lane_leaves_the_region_usable_and_unmapped(
    library: native.NativeLibrary, instance: str
) -> None:
    with lane_region(library, instance, magic=0) as region:
        for _ in range(3):
            with pytest.raises(LaneProtocolError):
                Lane(library, region.name, instance=instance)
        assert region.info().holders == 1


# --- reading slots --------------------------------------------------------------------------


def request_ring(host: HostLane) -> Ring:
    return Ring(host.view, HEADER_BYTES, host.slot_bytes, host.slot_count, host.epoch)


def test_ring_reads_a_slot_whose_sequence_epoch_and_length_match(host: HostLane) -> None:
    ring = request_ring(host)
    frame = packb([REQ_CANCEL, "r1"])
    host.write_request(3, frame)
    assert ring.read(3) == frame
    # Counters wrap at 2**32: frame 2**32 - 1 lives in the last slot.
    host.write_request(U32_MASK, frame)
    assert ring.read(U32_MASK) == frame
    big = bytes(range(256)) * 2
    host.write_request(4, big[: host.capacity])
    assert ring.read(4) == big[: host.capacity]


def test_ring_refuses_a_slot_from_another_epoch(host: HostLane) -> None:
    host.write_request(1, b"\x91\x01", epoch=host.epoch ^ 0x5A5A5A5A)
    with pytest.raises(LaneProtocolError, match="stale ring from another process") as caught:
        request_ring(host).read(1)
    assert f"the lane's is {host.epoch:#x}" in str(caught.value)


@pytest.mark.parametrize("sequence", [0, 2, 1 + SLOT_COUNT, U32_MASK])
def test_ring_refuses_a_slot_carrying_another_frame(host: HostLane, sequence: int) -> None:
    host.write_request(1, b"\x91\x01", sequence=sequence)
    with pytest.raises(LaneProtocolError, match=r"expected frame 1 \(a stale or torn slot\)"):
        request_ring(host).read(1)


@pytest.mark.parametrize("length", [0, SLOT_BYTES - SLOT_HEADER_BYTES + 1, U32_MASK])
def test_ring_refuses_a_length_of_zero_or_past_the_slot(host: HostLane, length: int) -> None:
    host.write_request(2, b"\x91\x01", length=length)
    with pytest.raises(LaneProtocolError) as caught:
        request_ring(host).read(2)
    assert str(caught.value) == (
        f"frame 2 claims {length} bytes; a slot holds 1 to {SLOT_BYTES - SLOT_HEADER_BYTES}"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xc1", "frame 7 is not valid msgpack"),
        (b"", "frame 7 is not valid msgpack"),
        (b"\x92\x01", "frame 7 is not valid msgpack"),  # truncated array
        (packb([1]) + b"\x00", "frame 7 is not valid msgpack"),  # trailing bytes
        (packb({"kind": 1}), "frame 7 is not a [kind, ...] array"),
        (packb(7), "frame 7 is not a [kind, ...] array"),
        (packb([]), "frame 7 is not a [kind, ...] array"),
        (packb(["call", "id"]), "frame 7 is not a [kind, ...] array"),
        (packb([None]), "frame 7 is not a [kind, ...] array"),
    ],
)
def test_decode_frame_refuses_what_is_not_a_kind_array(data: bytes, expected: str) -> None:
    with pytest.raises(LaneProtocolError) as caught:
        decode_frame(data, 7)
    assert str(caught.value).startswith(expected)


def test_decode_frame_returns_the_frame_as_a_list() -> None:
    assert decode_frame(packb([REQ_CREDIT, "s1", 4]), 0) == [REQ_CREDIT, "s1", 4]
    assert decode_frame(packb([REQ_CALL, "c", b"\x00"]), 0) == [REQ_CALL, "c", b"\x00"]


def test_fuzzed_slots_are_read_correctly_or_refused_never_anything_else(host: HostLane) -> None:
    generator = random.Random(0x5EED)
    ring = request_ring(host)
    capacity = host.capacity
    outcomes = {"read": 0, "decoded": 0, "refused": 0}
    for round_number in range(3000):
        index = generator.randrange(1 << 32)
        host.write_request(index, packb(call(f"c{round_number}", "echo", {"value": round_number})))
        for _ in range(generator.randrange(1, 4)):
            mutate_slot(host, generator, index, host.capacity)
        offset = host.request_slot(index)
        sequence, epoch, length, _ = struct.unpack_from("<4I", host.view, offset)
        try:
            data = ring.read(index)
        except LaneProtocolError:
            outcomes["refused"] += 1
            assert (sequence, epoch) != (index, host.epoch) or not 0 < length <= capacity
            continue
        outcomes["read"] += 1
        assert (sequence, epoch) == (index, host.epoch) and 0 < length <= capacity
        body = offset + SLOT_HEADER_BYTES
        assert data == bytes(host.view[body : body + length])
        try:
            frame = decode_frame(data, index)
        except LaneProtocolError:
            outcomes["refused"] += 1
            continue
        outcomes["decoded"] += 1
        assert isinstance(frame, list) and isinstance(frame[0], int)
    assert all(count > 100 for count in outcomes.values()), outcomes
