"""`ProcessHygiene`: a worker dies with its host and takes its own children along.

The worker leads its own process group (``setsid``), arms ``PR_SET_PDEATHSIG`` on Linux and
watches its parent (a pidfd where Linux offers one, else a poll of ``getppid()``); when the
parent is gone it removes its socket and kills its whole group.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import sys
import threading
import time
from typing import NoReturn

PARENT_POLL_S = 0.2
PARENT_POLL_IDLE_S = 5.0  # Safety-net timeout of the pidfd wait.
PR_SET_PDEATHSIG = 1

logger = logging.getLogger("snakepit_bridge.worker")


class ProcessHygiene:
    """Makes the worker die with its parent and take its own children along."""

    def __init__(self, parent_pid: int | None) -> None:
        self._initial_ppid = os.getppid()
        self._parent_pid = parent_pid
        # Set once bound: when the host is gone nobody else will remove the socket, nor the
        # host's private socket directory once its last worker's socket is gone.
        self.socket_path: str | None = None

    def arm(self) -> None:
        if os.getsid(0) != os.getpid():
            try:
                os.setsid()
            except PermissionError:
                # Already a process-group leader (the host spawned us in our own group): that
                # group is ours, which is all killpg needs.
                logger.debug("setsid refused; staying in process group %d", os.getpgrp())
        _arm_parent_death_signal()
        # The parent may have died between our fork and prctl, when no signal was armed yet.
        if self.parent_gone():
            logger.error("parent process is already gone; exiting")
            self.kill_group()
        threading.Thread(target=self._watch, name="snakepit-parent-watch", daemon=True).start()

    def parent_gone(self) -> bool:
        if os.getppid() != self._initial_ppid:
            return True
        if self._parent_pid is not None and self._parent_pid != self._initial_ppid:
            return not _pid_alive(self._parent_pid)
        return False

    def kill_group(self) -> NoReturn:
        if self.socket_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.socket_path)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(self.socket_path))  # Fails while a sibling's socket remains.
        flush_stdio()
        # Only a group we lead is ours to kill: never signal the host's group.
        if os.getpgrp() == os.getpid():
            os.killpg(0, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
        raise SystemExit(1)  # Unreachable; keeps the type checker honest.

    def _watch(self) -> None:
        # An idle worker must cost no CPU: block on a pidfd of the parent (readable when it exits)
        # where Linux offers one, and poll getppid() only as the fallback and safety net.
        parent_fd = _open_pidfd(self._parent_pid or self._initial_ppid)
        while True:
            if parent_fd is not None:
                select.select([parent_fd], [], [], PARENT_POLL_IDLE_S)
            else:
                time.sleep(PARENT_POLL_S)
            if self.parent_gone():
                logger.error("parent process died; killing the worker's process group")
                self.kill_group()


def _open_pidfd(pid: int) -> int | None:
    """A pidfd of `pid` (Linux 5.3+), or None where the platform has none."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def _arm_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return  # Elsewhere the parent watcher alone notices the parent's death.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A dead parent nobody has reaped yet is a zombie: it still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
