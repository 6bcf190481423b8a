"""The process-shared RW lock of a shared-memory region, from Python: the same
``snakepit_lock_*`` calls as TypeScript's ``ffi/region_lock.ts``.

:class:`RegionLocking` is the part of :class:`~snakepit_bridge.native_region.Region` that takes
and gives back the lock; it uses the Region's handle, library and error helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal

from .native import STATUS_CODES

if TYPE_CHECKING:
    from .native_region import Region

LockMode = Literal["shared", "exclusive"]

_MODES: Final[dict[str, int]] = {"shared": 0, "exclusive": 1}
_OK: Final[int] = STATUS_CODES["ok"]
_OWNER_DEAD: Final[int] = STATUS_CODES["owner_dead"]
_WOULD_BLOCK: Final[int] = STATUS_CODES["would_block"]
_NO_DEADLINE: Final[int] = 0xFFFF_FFFF_FFFF_FFFF


class RegionLock:
    """A held lock; release it with :meth:`release` or a ``with`` block.

    ``owner_died`` is true when the previous holder died holding the lock and this acquisition
    recovered it: the data may be half-written.
    """

    def __init__(self, region: Region, mode: LockMode, owner_died: bool) -> None:
        self.mode: LockMode = mode
        self.owner_died = owner_died
        self._region: Region | None = region

    @property
    def released(self) -> bool:
        return self._region is None

    def release(self) -> None:
        """Releases the lock; idempotent, and a no-op once the Region is closed."""
        region, self._region = self._region, None
        if region is not None and not region.closed:
            region._unlock(self.mode)

    def __enter__(self) -> RegionLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class RegionLocking:
    """Lock operations of a Region (mixed into it)."""

    # Provided by Region, with its _live, _functions and _raise_unless_ok.
    name: str
    closed: bool
    _library: Any

    def try_lock_shared(self) -> RegionLock | None:
        """The shared lock if it is free now, else None."""
        return self._acquire("shared", 0, "try_lock_shared")

    def try_lock_exclusive(self) -> RegionLock | None:
        """The exclusive lock if it is free now, else None."""
        return self._acquire("exclusive", 0, "try_lock_exclusive")

    def lock_shared(self, timeout: float | None = None) -> RegionLock:
        """Waits (``timeout`` seconds, None: no limit) for the shared lock; the GIL is released."""
        return self._lock("shared", timeout, "lock_shared")

    def lock_exclusive(self, timeout: float | None = None) -> RegionLock:
        """Waits for the exclusive lock (new readers stop at once; writers are preferred)."""
        return self._lock("exclusive", timeout, "lock_exclusive")

    def _lock(self, mode: LockMode, timeout: float | None, op: str) -> RegionLock:
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise ValueError(f"Cannot {op}: timeout must be None or a number >= 0, got {timeout!r}")
        timeout_ns = _NO_DEADLINE if timeout is None else max(1, int(timeout * 1e9))
        lock = self._acquire(mode, timeout_ns, op)
        if lock is None:
            self._raise_unless_ok(op, STATUS_CODES["timed_out"], f"Cannot {op} region {self.name}")
        assert lock is not None
        return lock

    def _acquire(self, mode: LockMode, timeout_ns: int, op: str) -> RegionLock | None:
        status = self._functions(op).snakepit_lock_acquire(
            self._live(op), _MODES[mode], timeout_ns, 0
        )
        if status in (_OK, _OWNER_DEAD):
            return RegionLock(self, mode, status == _OWNER_DEAD)  # type: ignore[arg-type]
        if status == _WOULD_BLOCK and timeout_ns == 0:
            return None
        self._raise_unless_ok(op, status, f"Cannot {op} region {self.name}")
        return None

    def _unlock(self, mode: LockMode) -> None:
        status = self._functions("unlock").snakepit_lock_release(self._live("unlock"), _MODES[mode])
        self._raise_unless_ok("unlock", status, f"Cannot unlock region {self.name}")
