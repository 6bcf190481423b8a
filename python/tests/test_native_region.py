"""Specification of shared-memory regions from Python (snakepit_bridge.native_region): the same
regions, reference counts and locks as TypeScript's Region, across real processes."""

from __future__ import annotations

import gc
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy
import pytest

from snakepit_bridge import native, native_descriptor, native_header
from snakepit_bridge.native_errors import SharedMemoryError
from snakepit_bridge.native_reaper import reap_regions
from snakepit_bridge.native_region import Region

PEER = str(Path(__file__).with_name("native_peer.py"))
MISSING = "/snakepit-nobody-0123456789abcdef0123456789abcdef"
_counter = iter(range(1_000_000))


def instance(tag: str) -> str:
    return f"{tag[:6]}_{os.getpid()}_{next(_counter)}"[:20]


def exists(name: str) -> bool:
    return Path("/dev/shm", name[1:]).exists()


class Peer:
    """A native_peer.py process; lines are awaited, never slept for."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, PEER, *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def line(self) -> str:
        assert self.process.stdout is not None
        text = self.process.stdout.readline().strip()
        assert text, (
            f"peer printed nothing; stderr: {self.process.stderr and self.process.stderr.read()}"
        )
        return text

    def finish(self, timeout: float = 20) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(20)


@pytest.fixture(scope="module")
def library() -> native.NativeLibrary:
    return native.load()


@pytest.fixture()
def region(library: native.NativeLibrary) -> Iterator[Region]:
    name = instance("py")
    created = Region.create(library, 4096, instance=name)
    try:
        yield created
    finally:
        gc.collect()
        created.close()
        # Peers killed by a failed test leave references behind: the reaper takes them.
        reap_regions(library, instance=name, grace_ms=0)
        assert not exists(created.name)


def test_a_created_region_is_zeroed_0600_and_shared_with_an_opener(
    library: native.NativeLibrary, region: Region
) -> None:
    assert region.payload_bytes == 4096
    assert stat.S_IMODE(os.stat(f"/dev/shm{region.name}").st_mode) == 0o600
    view = region.view()
    assert bytes(view) == bytes(4096)
    view[:4] = b"\x01\x02\x03\x04"
    with Region.open(library, region.name) as opened:
        other = opened.view()
        assert bytes(other[:4]) == b"\x01\x02\x03\x04"
        assert opened.info().reference_count == 2
        other.release()
    view.release()


def test_close_releases_memoryviews_and_refuses_while_arrays_are_alive(
    library: native.NativeLibrary,
) -> None:
    region = Region.create(library, 64, instance=instance("views"))
    view = region.view()
    array = region.numpy(numpy.float64, (8,))
    array[:] = 3.0
    with pytest.raises(SharedMemoryError) as caught:
        region.close()
    assert caught.value.status_name == "views_alive"
    assert "Delete them" in str(caught.value)
    assert not region.closed and exists(region.name)
    del array
    gc.collect()
    region.close()
    with pytest.raises(ValueError, match="released memoryview"):
        view[0]
    with pytest.raises(SharedMemoryError) as after:
        region.view()
    assert after.value.status_name == "closed"
    assert not exists(region.name)


def test_retain_release_balance_and_over_release_is_an_error(
    library: native.NativeLibrary,
) -> None:
    with Region.create(library, 64, instance=instance("refs")) as region:
        region.retain()
        assert region.info().reference_count == 2
        assert region.release() is False
        assert region.release() is True
        assert not exists(region.name)
        with pytest.raises(SharedMemoryError) as caught:
            region.release()
        assert caught.value.status_name == "over_release"
        with pytest.raises(SharedMemoryError, match=r"\[region_released\]"):
            region.retain()


def test_opening_a_missing_region_reads_like_typescripts_error(
    library: native.NativeLibrary,
) -> None:
    with pytest.raises(SharedMemoryError) as caught:
        Region.open(library, MISSING)
    error = caught.value
    assert (error.op, error.status, error.status_name) == ("open", -4, "not_found")
    assert (error.errno, error.syscall, error.region_name) == (2, "shm_open", MISSING)
    assert str(error) == (
        f"Cannot open shared-memory region {MISSING}: no region has this name (never created, or "
        "already unlinked) [not_found]; shm_open failed with errno 2 (ENOENT). Check the name, and "
        "that the producer keeps its reference until the consumer has opened the region."
    )


def test_a_region_larger_than_dev_shm_is_shm_full_with_how_to_enlarge_it(
    library: native.NativeLibrary,
) -> None:
    payload = library.shm_available_bytes() + (1 << 30)
    if payload > library.limits()["region_payload_bytes_max"]:
        pytest.skip("/dev/shm is larger than the region limit")
    with pytest.raises(SharedMemoryError) as caught:
        Region.create(library, payload)
    assert caught.value.status_name == "shm_full"
    assert "--shm-size=2g" in str(caught.value)
    assert f"{payload + 4096} bytes needed" in str(caught.value)


def test_bad_arguments_raise_value_error_and_limits_are_statuses(
    library: native.NativeLibrary,
) -> None:
    with pytest.raises(ValueError, match="payload_bytes must be a positive integer, got 0"):
        Region.create(library, 0)
    with pytest.raises(ValueError, match="instance must match"):
        Region.create(library, 8, instance="no-dash")
    with pytest.raises(ValueError, match="name must match"):
        Region.open(library, "/etc/passwd")
    with pytest.raises(SharedMemoryError) as caught:
        Region.create(library, (64 << 30) + 1)
    assert caught.value.status_name == "region_too_large"


def test_try_locks_and_a_timed_lock(library: native.NativeLibrary, region: Region) -> None:
    with Region.open(library, region.name) as other:
        lock = region.try_lock_exclusive()
        assert lock is not None and not lock.owner_died
        assert other.try_lock_shared() is None
        started = time.monotonic()
        with pytest.raises(SharedMemoryError) as caught:
            other.lock_shared(timeout=0.05)
        assert caught.value.status_name == "timed_out"
        assert time.monotonic() - started >= 0.045
        lock.release()
        with other.lock_shared(timeout=1) as shared, region.lock_shared(timeout=1):
            assert shared.mode == "shared"
            assert region.try_lock_exclusive() is None


@pytest.mark.parametrize("mode", ["exclusive", "shared"])
def test_a_sigkilled_lock_holder_is_recovered_with_owner_died(region: Region, mode: str) -> None:
    peer = Peer("hold", region.name, mode, "forever")
    assert peer.line() == "held"
    assert region.try_lock_exclusive() is None
    killed_at = time.monotonic()
    peer.kill()
    lock = region.lock_exclusive(timeout=5)
    assert lock.owner_died is True
    assert time.monotonic() - killed_at < 1.0
    lock.release()
    again = region.try_lock_exclusive()
    assert again is not None and again.owner_died is False
    again.release()
    assert region.info().lock_owner_deaths == 1


def test_eight_processes_churning_references_leave_the_count_at_zero(region: Region) -> None:
    peers = [Peer("churn", region.name, "1000") for _ in range(8)]
    assert [peer.line() for peer in peers] == ["churned"] * 8
    assert [peer.process.wait(20) for peer in peers] == [0] * 8
    assert region.info().reference_count == 1
    assert region.release() is True
    assert region.info().reference_count == 0
    assert not exists(region.name)


def test_python_readers_do_not_starve_a_python_writer(region: Region) -> None:
    readers = [Peer("reader", region.name, "2", "2") for _ in range(3)]
    try:
        assert [reader.line() for reader in readers] == ["ready"] * 3
        view = region.view()
        slowest = 0.0
        for round_number in range(1, 11):
            started = time.monotonic()
            with region.lock_exclusive(timeout=2):
                slowest = max(slowest, time.monotonic() - started)
                view[:4096] = bytes([round_number]) * 4096
            time.sleep(0.005)
        view.release()
        assert slowest < 1.0, "without writer preference it would wait for the readers (2 s)"
        results = [json.loads(reader.line()) for reader in readers]
        assert all(result["reads"] > 20 and result["torn"] == 0 for result in results), results
        assert [reader.process.wait(20) for reader in readers] == [0] * 3
    finally:
        for reader in readers:
            if reader.process.poll() is None:
                reader.kill()


def test_the_reaper_removes_a_dead_creators_region_and_spares_a_live_ones(
    library: native.NativeLibrary,
) -> None:
    name = instance("reap")
    doomed, living = (
        Peer("create", name, "4096", "aa", "forever"),
        Peer("create", name, "4096", "bb"),
    )
    try:
        doomed_name, living_name = doomed.line(), living.line()
        doomed.kill()
        report = reap_regions(library, instance=name, grace_ms=0)
        assert (report.scanned, report.reaped, report.spared_live) == (2, 1, 1)
        assert not exists(doomed_name) and exists(living_name)
    finally:
        assert living.finish() == 0
    assert not exists(living_name)


def test_header_and_descriptor_mirrors_match_the_library(
    library: native.NativeLibrary, region: Region
) -> None:
    assert list(native_header.FIELDS.values()) == library.header_layout()
    assert list(native_descriptor.FIELDS.values()) == library.descriptor_layout()
    assert library.limits()["header_bytes"] == native_header.HEADER_BYTES
    header = native_header.read_region_header(Path(f"/dev/shm{region.name}").read_bytes()[:1280])
    info = region.info()
    assert (header.generation, header.payload_bytes, header.reference_count) == (
        info.generation,
        info.payload_bytes,
        info.reference_count,
    )
    assert header.holders == [(os.getpid(), 1)]


def test_a_forked_child_cannot_use_its_parents_handles(region: Region) -> None:
    child = os.fork()
    if child == 0:
        try:
            region.info()
        except SharedMemoryError as error:
            os._exit(0 if error.status_name == "invalid_handle" else 2)
        os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert region.info().reference_count == 1


def test_views_after_close_from_another_process_still_read_the_data(
    library: native.NativeLibrary,
) -> None:
    region = Region.create(library, 16, instance=instance("after"))
    region.view()[:2] = b"hi"
    peer = Peer("read", region.name, "2")
    assert peer.line() == "6869"
    assert peer.process.wait(20) == 0
    region.close()
    assert not exists(region.name)
