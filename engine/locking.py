"""Advisory file locks shared by every tanren process (CLI, TUI, detached runs).

The kernel drops an flock when the last descriptor holding it closes, so a crashed process
never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class HeldLock:
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = -1


def try_lock(path: Path, *, blocking: bool = False) -> HeldLock | None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return HeldLock(fd)


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on `path`; yields False when non-blocking and already held."""
    held = try_lock(path, blocking=blocking)
    try:
        yield held is not None
    finally:
        if held is not None:
            held.release()
