"""Replacing a file whole: a reader sees the old version or the new one, never part of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to a temporary file beside `path` (created with `mode`, its folder with 0755
    if missing) and rename it over `path` (OSError when that fails; no temporary file is left)."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
