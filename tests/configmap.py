"""A Kubernetes ConfigMap volume on disk, as the kubelet writes it, for tests of folder watching."""

from __future__ import annotations

import os
from pathlib import Path


def configmap_volume(folder: Path, stamp: str, files: dict[str, str]) -> None:
    """Write `files` as the kubelet's atomic writer does: a new `..TIMESTAMP` folder, a `..data_tmp`
    symlink to it renamed over `..data`, a `NAME -> ..data/NAME` link per key (stale ones
    removed), and the previous timestamped folder removed."""
    data = folder / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    new = folder / f"..2026_11_22_{stamp}"
    new.mkdir()
    for name, text in files.items():
        (new / name).write_text(text)
    os.symlink(new.name, folder / "..data_tmp")
    os.rename(folder / "..data_tmp", data)
    for link in folder.iterdir():
        if not link.name.startswith("..") and link.name not in files:
            link.unlink()
    for name in files:
        if not (folder / name).is_symlink():
            os.symlink(f"..data/{name}", folder / name)
    if old:
        for child in (folder / old).iterdir():
            child.unlink()
        (folder / old).rmdir()
