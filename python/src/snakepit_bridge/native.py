"""The native library (``zig-out/lib/libsnakepit.so``) through ctypes.

This is the only Python module that loads native code. It binds the same symbols as the
TypeScript loaders (``ffi/symbols.ts``); ``tests/native_symbols.test.ts`` checks that this
module's :data:`SYMBOLS` table (kept in ``native_symbols``), the TypeScript one and ``zig/c_api.zig`` agree.

Example::

    from snakepit_bridge import native

    library = native.load()
    assert library.crc32c(b"123456789") == 0xE3069283
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path
from typing import Final

from snakepit_bridge.native_symbols import (  # noqa: F401 - re-exported
    CRC32C_INPUT_BYTES_MAX,
    ERROR_RECORD_WORDS,
    LIMIT_NAMES,
    NATIVE_ABI_VERSION,
    NativeSymbol,
    NativeType,
    OPS,
    PATH_VARIABLE,
    STATUS_CODES,
    STATUS_NAME_BYTES_MAX,
    SYMBOLS,
)

_CTYPES: Final[dict[str, type]] = {
    "u32": ctypes.c_uint32,
    "i32": ctypes.c_int32,
    "u64": ctypes.c_uint64,
    "buffer": ctypes.c_void_p,
}
_BUILD_HINT: Final[str] = "Run `make setup` to build it, or set SNAKEPIT_NATIVE_LIB to its path."
_STATUS_NAMES: Final[dict[int, str]] = {code: name for name, code in STATUS_CODES.items()}


class NativeLibraryError(Exception):
    """The native library could not be loaded, did not match, or returned an error status.

    ``status`` is the native status code, or 0 when no native call failed; ``status_name`` is
    then one of ``not_found``, ``load_failed``, ``abi_mismatch``. Decide on ``status_name``,
    never on the message.
    """

    def __init__(
        self,
        message: str,
        *,
        op: str,
        status: int,
        status_name: str,
        path: str,
        errno: int | None = None,
    ) -> None:
        super().__init__(message)
        self.op = op
        self.status = status
        self.status_name = status_name
        self.path = path
        self.errno = errno


def default_library_path() -> str:
    """``SNAKEPIT_NATIVE_LIB`` if set, else the repository's ``zig-out/lib`` build if present,
    else the bare file name (left to the system's library search)."""
    from_environment = os.environ.get(PATH_VARIABLE, "")
    if from_environment:
        return from_environment
    file_name = "libsnakepit.dylib" if sys.platform == "darwin" else "libsnakepit.so"
    # native.py -> snakepit_bridge -> src -> python -> repository root
    built = Path(__file__).resolve().parents[3] / "zig-out" / "lib" / file_name
    return str(built) if built.exists() else file_name


# Calls that never block (an atomic store, at most one futex wake) keep the GIL: releasing and
# retaking it costs about a microsecond per fast-lane reply and lets another thread in between.
GIL_HELD = ("snakepit_region_publish_word", "snakepit_region_wake_word")


class NativeLibrary:
    """The opened library; every method is synchronous and pointer-free."""

    def __init__(self, path: str, handle: ctypes.CDLL, held: ctypes.PyDLL | None = None) -> None:
        self.path = path
        self._handle = handle
        self._held = held if held is not None else handle

    def abi_version(self) -> int:
        """The library's ABI version (equals :data:`NATIVE_ABI_VERSION` once loaded)."""
        version = ctypes.c_uint32()
        self._check("abi_version", self._handle.snakepit_abi_version(ctypes.byref(version)))
        return version.value

    def library_version(self) -> str:
        """The library's version as ``"major.minor.patch"``."""
        parts = [ctypes.c_uint32() for _ in range(3)]
        status = self._handle.snakepit_library_version(*(ctypes.byref(part) for part in parts))
        self._check("library_version", status)
        return ".".join(str(part.value) for part in parts)

    def crc32c(self, data: bytes | bytearray | memoryview) -> int:
        """The CRC-32C (Castagnoli) of ``data`` as an unsigned 32-bit int.

        ``bytes`` and writable buffers are read in place; other read-only views are copied once.
        Raises ``TypeError`` for non-buffers, ``ValueError`` for non-contiguous or too-large data.
        """
        pointer, length = _readable_pointer(data)
        crc = ctypes.c_uint32()
        self._check("crc32c", self._handle.snakepit_crc32c(pointer, length, ctypes.byref(crc)))
        return crc.value

    def status_name(self, status: int) -> str:
        """The stable name of a native status code; ``"unknown(<code>)"`` for undefined codes."""
        if not isinstance(status, int) or not -(2**31) <= status < 2**31:
            raise ValueError(
                f"Cannot name a native status: status must be a 32-bit integer, got {status!r}"
            )
        buffer = ctypes.create_string_buffer(STATUS_NAME_BYTES_MAX)
        length = ctypes.c_uint32()
        result = self._handle.snakepit_status_name(
            status, buffer, STATUS_NAME_BYTES_MAX, ctypes.byref(length)
        )
        if result == STATUS_CODES["invalid_argument"]:
            return f"unknown({status})"
        self._check("status_name", result)
        return buffer.raw[: length.value].decode("utf-8")

    @property
    def functions(self) -> ctypes.CDLL:
        """The bound ctypes functions, for the other ``snakepit_bridge.native_*`` modules."""
        return self._handle

    @property
    def functions_holding_gil(self) -> ctypes.CDLL:
        """The calls of :data:`GIL_HELD` bound without releasing the GIL (they never block)."""
        return self._held

    def limits(self) -> dict[str, int]:
        """The library's limits and layout constants, by the names of :data:`LIMIT_NAMES`."""
        words = (ctypes.c_uint64 * len(LIMIT_NAMES))()
        count = ctypes.c_uint32()
        self._check("limits", self._handle.snakepit_limits(words, len(words), ctypes.byref(count)))
        return dict(zip(LIMIT_NAMES, words))

    def shm_available_bytes(self) -> int:
        """Bytes an unprivileged process can still allocate in ``/dev/shm``."""
        available = ctypes.c_uint64()
        record = (ctypes.c_uint32 * ERROR_RECORD_WORDS)()
        status = self._handle.snakepit_shm_available(ctypes.byref(available), record)
        if status != STATUS_CODES["ok"]:
            from .native_errors import error_from_status

            raise error_from_status(self, "shm_available_bytes", status, record=record)
        return available.value

    def process_usage(self) -> tuple[int, int]:
        """The regions this process has open and the bytes they map."""
        regions = ctypes.c_uint32()
        mapped = ctypes.c_uint64()
        status = self._handle.snakepit_process_usage(ctypes.byref(regions), ctypes.byref(mapped))
        self._check("process_usage", status)
        return regions.value, mapped.value

    def header_layout(self) -> list[tuple[int, int]]:
        """The region header's layout: ``(offset, bytes)`` per field, in the library's order."""
        return self._layout("header_layout", self._handle.snakepit_header_layout)

    def descriptor_layout(self) -> list[tuple[int, int]]:
        """The encoded descriptor's layout: ``(offset, bytes)`` per field, in order."""
        return self._layout("descriptor_layout", self._handle.snakepit_descriptor_layout)

    def _layout(self, op: str, function: ctypes._CFuncPtr) -> list[tuple[int, int]]:  # type: ignore[name-defined]
        words = (ctypes.c_uint32 * 64)()
        count = ctypes.c_uint32()
        self._check(op, function(words, len(words), ctypes.byref(count)))
        return [(words[index], words[index + 1]) for index in range(0, count.value, 2)]

    def _check(self, op: str, status: int) -> None:
        if status == STATUS_CODES["ok"]:
            return
        name = _STATUS_NAMES.get(status, f"unknown({status})")
        raise NativeLibraryError(
            f"Native call {op} failed at {self.path} with status {name} ({status}). This is a bug "
            "in Snakepit or a mismatched library; rebuild it with `make setup`.",
            op=op,
            status=status,
            status_name=name,
            path=self.path,
        )


def load(path: str | None = None) -> NativeLibrary:
    """Loads the library and checks that its ABI version is :data:`NATIVE_ABI_VERSION`.

    Raises :class:`NativeLibraryError` (``not_found``, ``load_failed`` or ``abi_mismatch``) with
    a message naming the path and the fix.
    """
    library = _open(default_library_path() if path is None else path)
    version = library.abi_version()
    if version != NATIVE_ABI_VERSION:
        raise NativeLibraryError(
            f"Cannot use the native library at {library.path}: it has ABI version {version}, "
            f"this module needs {NATIVE_ABI_VERSION}. Rebuild it with `make setup`, or set "
            "SNAKEPIT_NATIVE_LIB to a matching build.",
            op="open",
            status=0,
            status_name="abi_mismatch",
            path=library.path,
        )
    return library


def abi_version_or_zero(path: str | None = None) -> int:
    """The ABI version of the library, or 0 when it cannot be loaded. Never raises."""
    try:
        return _open(default_library_path() if path is None else path).abi_version()
    except Exception:  # noqa: BLE001 - the contract is "never raises": 0 means unavailable.
        return 0


def symbol_table_json() -> str:
    """The tables this module mirrors from ``zig/`` as JSON, for cross-language checks."""
    table = {
        name: {"parameters": list(symbol.parameters), "result": symbol.result}
        for name, symbol in SYMBOLS.items()
    }
    return json.dumps(
        {
            "symbols": table,
            "statuses": STATUS_CODES,
            "ops": OPS,
            "status_name_bytes_max": STATUS_NAME_BYTES_MAX,
            "abi_version": NATIVE_ABI_VERSION,
        }
    )


def _open(path: str) -> NativeLibrary:
    if not isinstance(path, str) or path == "":
        raise TypeError(
            f"Cannot load the native library: path must be a non-empty string, got {path!r}"
        )
    try:
        handle = ctypes.CDLL(path)
    except OSError as error:
        not_found = os.sep in path and not os.path.exists(path)
        reason = "file not found" if not_found else str(error).rstrip(".")
        check = "" if not_found else "Check that it is a shared library built for this machine. "
        raise NativeLibraryError(
            f"Cannot load the native library at {path}: {reason}. {check}{_BUILD_HINT}",
            op="open",
            status=0,
            status_name="not_found" if not_found else "load_failed",
            path=path,
        ) from error
    for name, symbol in SYMBOLS.items():
        try:
            function = getattr(handle, name)
        except AttributeError as error:
            raise NativeLibraryError(
                f"Cannot load the native library at {path}: it lacks the symbol {name}, so it is "
                f"not a Snakepit library or is too old. {_BUILD_HINT}",
                op="open",
                status=0,
                status_name="load_failed",
                path=path,
            ) from error
        function.argtypes = [_CTYPES[parameter] for parameter in symbol.parameters]
        function.restype = _CTYPES[symbol.result]
    held = ctypes.PyDLL(path, handle=handle._handle)
    for name in GIL_HELD:
        function, symbol = getattr(held, name), SYMBOLS[name]
        function.argtypes = [_CTYPES[parameter] for parameter in symbol.parameters]
        function.restype = _CTYPES[symbol.result]
    return NativeLibrary(path, handle, held)


def _readable_pointer(data: bytes | bytearray | memoryview) -> tuple[object, int]:
    """A ctypes-passable pointer to ``data``'s bytes (kept alive by the caller) and its length."""
    if isinstance(data, bytes):
        # ctypes passes a bytes object's own buffer for a c_void_p parameter: no copy.
        return (data if data else None), len(data)
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"Cannot compute crc32c: data must be bytes, bytearray or memoryview, "
            f"got {type(data).__name__}"
        ) from None
    if not view.c_contiguous:
        raise ValueError("Cannot compute crc32c: data must be a C-contiguous buffer")
    length = view.nbytes
    if length > CRC32C_INPUT_BYTES_MAX:
        raise ValueError(
            f"Cannot compute crc32c: data must be at most {CRC32C_INPUT_BYTES_MAX} bytes, "
            f"got {length}"
        )
    if length == 0:
        return None, 0
    if view.readonly:
        return bytes(view), length
    return (ctypes.c_ubyte * length).from_buffer(view.cast("B")), length
