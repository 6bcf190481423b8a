"""Specification of the ctypes binding of the native library (snakepit_bridge.native)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from snakepit_bridge import native

CHECK_VALUE = 0xE3069283


def crc32c_reference(data: bytes) -> int:
    """Bit-at-a-time CRC-32C written from the definition (reflected polynomial 0x82F63B78)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@pytest.fixture(scope="module")
def library() -> native.NativeLibrary:
    return native.load()


def test_load_opens_the_default_library_at_an_existing_path(library: native.NativeLibrary) -> None:
    assert Path(library.path).name.startswith("libsnakepit.")
    assert library.path == native.default_library_path()


def test_abi_version_is_the_one_this_module_needs(library: native.NativeLibrary) -> None:
    assert library.abi_version() == native.NATIVE_ABI_VERSION == 1
    assert native.abi_version_or_zero() == 1


def test_library_version_is_0_1_0(library: native.NativeLibrary) -> None:
    assert library.library_version() == "0.1.0"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"123456789", CHECK_VALUE),
        (b"", 0),
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (b"The quick brown fox jumps over the lazy dog", 0x22620404),
    ],
)
def test_crc32c_matches_published_vectors(
    library: native.NativeLibrary, data: bytes, expected: int
) -> None:
    assert library.crc32c(data) == expected
    assert crc32c_reference(data) == expected


def test_crc32c_accepts_bytearray_and_memoryview_slices(library: native.NativeLibrary) -> None:
    padded = b"x123456789y"
    assert library.crc32c(bytearray(b"123456789")) == CHECK_VALUE
    assert library.crc32c(memoryview(padded)[1:10]) == CHECK_VALUE
    assert library.crc32c(memoryview(bytearray(padded))[1:10]) == CHECK_VALUE
    assert library.crc32c(memoryview(b"")) == 0


def test_crc32c_of_large_random_data_matches_the_reference(library: native.NativeLibrary) -> None:
    generator = random.Random(20240501)
    data = generator.randbytes(256 * 1024 + 7)
    assert library.crc32c(data) == crc32c_reference(data)
    for _ in range(50):
        length = generator.randrange(0, 2048)
        chunk = generator.randbytes(length)
        assert library.crc32c(chunk) == crc32c_reference(chunk)


def test_crc32c_rejects_non_buffers_and_non_contiguous_views(
    library: native.NativeLibrary,
) -> None:
    with pytest.raises(TypeError, match="Cannot compute crc32c: data must be bytes"):
        library.crc32c("123456789")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="C-contiguous"):
        library.crc32c(memoryview(b"abcdef")[::2])


def test_status_name_names_every_status_and_unknown_codes(library: native.NativeLibrary) -> None:
    for name, code in native.STATUS_CODES.items():
        assert library.status_name(code) == name
    assert library.status_name(7) == "unknown(7)"
    assert library.status_name(-(2**31)) == f"unknown({-(2**31)})"


def test_status_name_rejects_values_outside_i32(library: native.NativeLibrary) -> None:
    with pytest.raises(ValueError, match="status must be a 32-bit integer, got 2147483648"):
        library.status_name(2**31)


def test_load_of_a_missing_path_raises_a_helpful_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "libsnakepit.so")
    with pytest.raises(native.NativeLibraryError) as caught:
        native.load(missing)
    error = caught.value
    assert (error.op, error.status, error.status_name) == ("open", 0, "not_found")
    assert error.path == missing
    assert str(error) == (
        f"Cannot load the native library at {missing}: file not found. "
        "Run `make setup` to build it, or set SNAKEPIT_NATIVE_LIB to its path."
    )


def test_load_of_a_file_that_is_not_a_library_raises_load_failed(tmp_path: Path) -> None:
    not_a_library = tmp_path / "libsnakepit.so"
    not_a_library.write_text("not an ELF file")
    with pytest.raises(native.NativeLibraryError) as caught:
        native.load(str(not_a_library))
    assert caught.value.status_name == "load_failed"
    assert str(not_a_library) in str(caught.value)
    assert "make setup" in str(caught.value)


def test_abi_version_or_zero_is_zero_when_the_library_is_missing(tmp_path: Path) -> None:
    assert native.abi_version_or_zero(str(tmp_path / "missing.so")) == 0


def test_default_library_path_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.PATH_VARIABLE, "/opt/snakepit/libsnakepit.so")
    assert native.default_library_path() == "/opt/snakepit/libsnakepit.so"
    monkeypatch.setenv(native.PATH_VARIABLE, "")
    assert native.default_library_path().endswith("libsnakepit.so")
