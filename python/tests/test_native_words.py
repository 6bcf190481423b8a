"""Specification of futex words from Python (Region.wait_word / publish_word / wake_word): the
fast lane's doorbells, with the GIL released while a thread is parked."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snakepit_bridge import native
from snakepit_bridge.native_errors import SharedMemoryError
from snakepit_bridge.native_reaper import unlink_region
from snakepit_bridge.native_region import WORD_SPIN_NS_MAX, Region

WORD = 0
PARKED = 4
_counter = iter(range(1_000_000))


def instance(tag: str) -> str:
    return f"{tag[:6]}_{os.getpid()}_{next(_counter)}"[:20]


@pytest.fixture(scope="module")
def library() -> native.NativeLibrary:
    return native.load()


@pytest.fixture
def region(library: native.NativeLibrary) -> Iterator[Region]:
    with Region.create(library, 64, instance=instance("pyword")) as created:
        yield created


def word(region: Region, offset: int) -> int:
    return ctypes.c_uint32.from_address(region.payload_address() + offset).value


def await_parked(region: Region, timeout: float = 10.0) -> bool:
    """Polls (bounded) until the parked flag is raised: the waiter is then asleep in the futex."""
    deadline = time.monotonic() + timeout
    while word(region, PARKED) == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def test_the_library_is_loaded_with_ctypes_cdll_which_releases_the_gil(
    library: native.NativeLibrary,
) -> None:
    assert isinstance(library.functions, ctypes.CDLL)
    assert not isinstance(library.functions, ctypes.PyDLL)


def test_payload_address_is_the_library_mapping_and_sees_the_same_bytes(region: Region) -> None:
    address = region.payload_address()
    assert address % 256 == 0
    view = region.view()
    view[8:12] = (0x01020304).to_bytes(4, "little")
    assert ctypes.c_uint32.from_address(address + 8).value == 0x01020304
    view.release()


def test_publish_word_stores_the_value_and_reports_whether_a_waiter_was_parked(
    region: Region,
) -> None:
    assert region.publish_word(WORD, 0xFFFF_FFFE, PARKED) is False
    assert word(region, WORD) == 0xFFFF_FFFE
    assert word(region, PARKED) == 0
    ctypes.c_uint32.from_address(region.payload_address() + PARKED).value = 1
    assert region.publish_word(WORD, 5, PARKED) is True
    assert word(region, PARKED) == 0, "the publish cleared the flag"
    assert region.publish_word(60, 9) is False
    assert word(region, 60) == 9
    region.wake_word(WORD)


def test_wait_word_returns_at_once_when_the_word_already_differs(region: Region) -> None:
    region.publish_word(WORD, 7)
    start = time.monotonic()
    assert region.wait_word(WORD, 6, parked_offset=PARKED) == (7, False)
    assert time.monotonic() - start < 1.0
    assert word(region, PARKED) == 0


def test_wait_word_times_out_with_the_unchanged_value_and_the_flag_down(region: Region) -> None:
    region.publish_word(WORD, 3)
    assert region.wait_word(WORD, 3, spin_ns=1000, timeout=0) == (3, True)
    start = time.monotonic()
    assert region.wait_word(WORD, 3, parked_offset=PARKED, timeout=0.02) == (3, True)
    assert time.monotonic() - start >= 0.019
    assert word(region, PARKED) == 0


def test_a_parked_thread_is_woken_by_a_publish_while_other_threads_hold_the_gil(
    region: Region,
) -> None:
    results: list[tuple[int, bool]] = []
    progress: list[int] = []

    def waiter() -> None:
        results.append(region.wait_word(WORD, 0, parked_offset=PARKED, timeout=10.0))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert await_parked(region), "the waiter never parked"
    # Pure-Python work needs the GIL: it can only run because the parked thread released it.
    for step in range(10_000):
        progress.append(step)
    assert thread.is_alive(), "the waiter is still parked while this thread ran"
    assert region.publish_word(WORD, 42, PARKED) is True
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert results == [(42, False)]
    assert len(progress) == 10_000
    assert word(region, PARKED) == 0


def test_wake_word_ends_a_sleep_slice_early_and_the_wait_resumes(region: Region) -> None:
    results: list[tuple[int, bool]] = []
    thread = threading.Thread(
        target=lambda: results.append(region.wait_word(WORD, 0, parked_offset=PARKED, timeout=5.0))
    )
    thread.start()
    assert await_parked(region)
    region.wake_word(WORD)  # the word is unchanged: the waiter goes back to sleep
    time_before_publish = time.monotonic()
    assert thread.is_alive()
    ctypes.c_uint32.from_address(region.payload_address() + WORD).value = 1
    region.wake_word(WORD)
    thread.join(timeout=10)
    assert results == [(1, False)]
    assert time.monotonic() - time_before_publish < 5.0


def test_closing_the_region_from_another_thread_ends_a_wait_with_closed(
    library: native.NativeLibrary,
) -> None:
    region = Region.create(library, 64, instance=instance("pyclos"))
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            region.wait_word(WORD, 0, parked_offset=PARKED)
        except SharedMemoryError as error:
            errors.append(error)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert await_parked(region)
    region.close()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], SharedMemoryError)
    assert errors[0].status_name == "closed"
    assert str(errors[0]).startswith(f"Cannot call wait_word on region {region.name}: this")


def test_word_methods_refuse_bad_arguments_naming_each(region: Region) -> None:
    name = region.name
    range_message = "must be a multiple of 4 from 0 to 60 \\(the payload is 64 bytes\\)"
    with pytest.raises(ValueError, match=f"^Cannot publish_word on region {name}: word_offset "):
        region.publish_word(2, 1)
    with pytest.raises(ValueError, match=f"word_offset {range_message}, got 64$"):
        region.publish_word(64, 1)
    with pytest.raises(ValueError, match=f"parked_offset {range_message}, got 62$"):
        region.publish_word(0, 1, 62)
    with pytest.raises(ValueError, match="parked_offset must differ from word_offset, got 8 for"):
        region.publish_word(8, 1, 8)
    with pytest.raises(TypeError, match="word_offset must be an int, got '0'"):
        region.publish_word("0", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value must be from 0 to 4294967295, got 4294967296"):
        region.publish_word(0, 1 << 32)
    with pytest.raises(TypeError, match="value must be an int, got True"):
        region.publish_word(0, True)
    with pytest.raises(ValueError, match=f"^Cannot wake_word on region {name}: word_offset"):
        region.wake_word(-4)
    with pytest.raises(ValueError, match="expected must be from 0 to 4294967295, got -1"):
        region.wait_word(0, -1)
    with pytest.raises(ValueError, match=f"spin_ns must be from 0 to {WORD_SPIN_NS_MAX}"):
        region.wait_word(0, 0, spin_ns=WORD_SPIN_NS_MAX + 1)
    with pytest.raises(TypeError, match="spin_ns must be an int, got 1.5"):
        region.wait_word(0, 0, spin_ns=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout must be None or a number of seconds >= 0"):
        region.wait_word(0, 0, timeout=-1)
    with pytest.raises(ValueError, match="timeout must be None"):
        region.wait_word(0, 0, timeout=float("nan"))
    assert bytes(64) == ctypes.string_at(region.payload_address(), 64), "nothing was written"


def test_word_methods_of_a_closed_region_raise_closed(library: native.NativeLibrary) -> None:
    region = Region.create(library, 64, instance=instance("pyclsd"))
    region.close()
    for call, op in (
        (lambda: region.publish_word(0, 1), "publish_word"),
        (lambda: region.wake_word(0), "wake_word"),
        (lambda: region.wait_word(0, 0, timeout=0), "wait_word"),
        (region.payload_address, "payload_address"),
    ):
        with pytest.raises(SharedMemoryError, match=f"^Cannot call {op} on region ") as caught:
            call()
        assert caught.value.status_name == "closed"


def test_unlink_region_removes_a_name_once_then_reports_false(
    library: native.NativeLibrary,
) -> None:
    with Region.create(library, 16, instance=instance("pyunl")) as region:
        path = Path("/dev/shm", region.name[1:])
        assert path.exists()
        assert unlink_region(library, region.name) is True
        assert not path.exists()
        assert unlink_region(library, region.name) is False
        with pytest.raises(ValueError, match="^Cannot unlink a shared-memory region: name must"):
            unlink_region(library, "/etc/passwd")
