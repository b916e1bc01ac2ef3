"""The lock every bpfunits process takes before it reconciles, so two never overlap."""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bpfunits.errors import BpfUnitsError


class LockError(BpfUnitsError):
    pass


@contextmanager
def exclusive(path: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an flock on `path` for the block. The kernel drops it when the process dies, so
    a killed daemon never leaves it stuck."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not through a symlink, and never waiting on a FIFO: the lock is only ever a plain file.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        raise LockError(f"cannot open the lock file {path}: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LockError(f"the lock file {path} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockError(f"another bpfunits process holds {path}") from None
        yield
    finally:
        os.close(fd)
