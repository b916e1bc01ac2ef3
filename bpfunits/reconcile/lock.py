"""The lock every bpfunits process takes before it reconciles, so two never overlap."""

from __future__ import annotations

import fcntl
import os
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockError(f"another bpfunits process holds {path}") from None
        yield
    finally:
        os.close(fd)
