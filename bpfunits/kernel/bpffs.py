"""The BPF filesystem: mounting it, and the folder layout bpfunits keeps its pins in.

Layout under a state root (default /sys/fs/bpf/bpfunits):
  units/<unit-name>/              maps (the name with '.' written as %2e, see folder_name) a unit pins (libbpf pin_root_path), kept across reloads
  hooks/if<ifindex>/<hook>/       links and programs attached to one hook of one interface
"""

from __future__ import annotations

import ctypes
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook

BPFFS = Path("/sys/fs/bpf")
NAME_MAX = 255  # bytes in one path component, bpffs included
BPF_FS_MAGIC = 0xCAFE4A11

_libc = ctypes.CDLL(None, use_errno=True)


class BpffsError(BpfUnitsError):
    pass


def ensure_mounted(path: str | Path = BPFFS) -> None:
    """Mount bpffs on `path` unless it is mounted there already."""
    path = Path(path)
    if os.path.ismount(path):
        return
    path.mkdir(parents=True, exist_ok=True)
    if _libc.mount(b"bpf", os.fsencode(path), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise BpffsError(f"cannot mount bpffs on {path}: {os.strerror(err)}")


def folder_name(name: str) -> str:
    """A unit name as a bpffs folder name: bpffs refuses '.' in names (EPERM), so '%' and '.'
    are percent-encoded, which keeps the mapping reversible."""
    if not name or "/" in name or "\0" in name:
        raise BpffsError(f"unit name {name!r} cannot be used as a bpffs folder name")
    return name.replace("%", "%25").replace(".", "%2e")


@dataclass(frozen=True)
class StateRoot:
    """Where bpfunits pins its objects. The folder getters create what they return."""

    path: Path = field(default=BPFFS / "bpfunits")

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def units_path(self) -> Path:
        """The folder of every unit's pin folder."""
        return self.path / "units"

    @property
    def hooks_path(self) -> Path:
        """The folder of every interface's hook folders (`if<ifindex>/<hook>/`)."""
        return self.path / "hooks"

    def unit_path(self, unit_name: str) -> Path:
        """A unit's pin folder, without creating it."""
        return self.units_path / folder_name(unit_name)

    def unit_dir(self, unit_name: str) -> Path:
        """A unit's pin folder, created if missing."""
        path = self.unit_path(unit_name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def hook_path(self, ifindex: int, hook: Hook) -> Path:
        """The pin folder of one hook on one interface, without creating it."""
        return self.hooks_path / f"if{int(ifindex)}" / Hook(hook).value

    def hook_dir(self, ifindex: int, hook: Hook) -> Path:
        """The pin folder of one hook on one interface, created if missing."""
        path = self.hook_path(ifindex, hook)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def remove_unit(self, unit_name: str) -> None:
        """Unpin everything a unit pinned (its maps lose their state once unused)."""
        remove_tree(self.unit_path(unit_name))

    def remove(self) -> None:
        """Remove the whole state root and every pin in it."""
        remove_tree(self.path)


def remove_tree(path: Path) -> None:
    """Remove a bpffs folder with its pins; a missing folder is fine."""
    # bpffs allows unlink on pins and rmdir on empty folders, which is all rmtree does.
    if path.exists():
        shutil.rmtree(path)
