"""The BPF filesystem: mounting it, and the state root bpfunits keeps its pins in.

Layout under a state root (default /sys/fs/bpf/bpfunits, mode 0700):
  units/<unit-name>/                   maps a unit pins (the name with '.' written as %2e, see
                                       pinname.folder_name), kept across reloads
  hooks/ns<inode>/if<ifindex>/<hook>/  links and programs attached to one hook of one interface
                                       of the network namespace with that inode

bpffs is often mounted mode 1777, so anyone may create the root before bpfunits does: the root
must be a real folder on bpffs, owned by root and writable by nobody else, and no walk inside it
follows a symlink (O_NOFOLLOW, one component at a time from /).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.pinname import PinNameError, folder_name
from bpfunits.sys import netns
from bpfunits.sys.libc import libc as _libc

BPFFS = Path("/sys/fs/bpf")
BPF_FS_MAGIC = 0xCAFE4A11
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


def fs_magic(fd: int) -> int:
    """The file system type (statfs f_type) of what `fd` is open on."""
    buf = ctypes.create_string_buffer(120)  # struct statfs; f_type is its first field, a long
    if _libc.fstatfs(fd, buf) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return int.from_bytes(buf.raw[:8], "little")


@contextmanager
def opened_folder(path: Path, *, create_below: Path | None = None) -> Iterator[int | None]:
    """An fd of folder `path`, walked from / one component at a time without following any
    symlink; None if it is missing. With `create_below`, missing folders below that one are
    created, mode 0700."""
    path = Path(os.path.abspath(path))
    fd = os.open("/", _DIR_FLAGS)
    try:
        for depth, part in enumerate(path.parts[1:], start=2):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create_below is None or depth <= len(create_below.parts):
                    yield None
                    return
                os.mkdir(part, 0o700, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                raise BpffsError(f"{Path(*path.parts[:depth])}: not a folder bpfunits may use "
                                 f"(a symlink or a pinned object?): {e.strerror}") from e
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove a bpffs folder with its pins (or one pin); a missing one is fine. Symlinks are
    removed, never followed."""
    path = Path(path)
    with opened_folder(path.parent) as parent:
        if parent is None:
            return
        try:
            st = os.lstat(path.name, dir_fd=parent)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            # bpffs allows unlink on pins and rmdir on empty folders, which is all rmtree does;
            # with dir_fd it walks by fd and never follows a symlink.
            shutil.rmtree(path.name, dir_fd=parent)
        else:
            os.unlink(path.name, dir_fd=parent)


def prune_empty(path: Path) -> None:
    """Remove the empty folders below folder `path`, and those that leaves empty (`path` itself
    stays), walking by fd without following symlinks: one walk, where checking each folder by
    its path would walk from / again for every one."""
    with opened_folder(path) as fd:
        if fd is not None:
            _prune(fd)


def _prune(fd: int) -> bool:
    """Prune below the folder open as `fd`; whether it is empty now."""
    empty = True
    for name in os.listdir(fd):
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError:  # a pin, or a symlink: kept
            empty = False
            continue
        try:
            emptied = _prune(child)
        finally:
            os.close(child)
        if not emptied:
            empty = False
            continue
        try:
            os.rmdir(name, dir_fd=fd)
        except OSError:  # filled meanwhile
            empty = False
    return empty


def children(path: Path) -> list[Path]:
    """The entries of folder `path` (none if it is missing), read without following symlinks."""
    return [path / name for name in sorted(names(path))]


def names(path: Path) -> list[str]:
    """The names in folder `path` (none if it is missing), unsorted, read without following
    symlinks."""
    with opened_folder(path) as fd:
        return os.listdir(fd) if fd is not None else []


# What `listing` finds in a folder: per entry, its own listing, or None when it is not a folder.
Listing = dict[str, "Listing | None"]


def listing(path: Path, depth: int) -> Listing:
    """The names in folder `path` (none if it is missing) and, `depth` levels down, in each folder
    among them, read without following symlinks. An entry that is not a folder (a symlink, a
    pin) maps to None: whoever meets it there reports what it is. Leaves map to {}."""
    with opened_folder(path) as fd:
        return _listing(fd, depth) if fd is not None else {}


def _listing(fd: int, depth: int) -> Listing:
    found: Listing = {}
    for name in os.listdir(fd):
        if depth == 0:
            found[name] = {}
            continue
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            found[name] = None
            continue
        try:
            found[name] = _listing(child, depth - 1)
        finally:
            os.close(child)
    return found


@dataclass(frozen=True)
class StateRoot:
    """Where bpfunits pins its objects. The `*_path` getters only name folders; `*_dir` ones
    create them (0700, without following a symlink). `check()` before any use of the root."""

    path: Path = field(default=BPFFS / "bpfunits")

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(os.path.abspath(self.path)))

    def check(self, *, create: bool) -> None:
        """Refuse a root others could have prepared: it must be a folder (not a symlink) on
        bpffs, owned by root (or this user) and writable by nobody else, as must `units` and
        `hooks` in it, and the folders above it on bpffs must not let others replace it. A
        missing root is created (0700) with `create`, and is fine without."""
        with opened_folder(self.path.parent) as parent:
            if parent is None:
                if create:
                    raise BpffsError(f"bpffs state root {self.path}: its parent folder does not exist")
                return
            self._check_ancestors()
            if create and not os.path.lexists(self.path):
                os.mkdir(self.path.name, 0o700, dir_fd=parent)
        with opened_folder(self.path) as fd:
            if fd is None:
                return
            if fs_magic(fd) != BPF_FS_MAGIC:
                raise BpffsError(f"bpffs state root {self.path} is not on bpffs")
            _refuse_writable_by_others(os.fstat(fd), f"bpffs state root {self.path}")
            for name in ("units", "hooks", "events"):
                try:
                    st = os.lstat(name, dir_fd=fd)
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise BpffsError(f"bpffs state root {self.path}: {name} is not a folder (a symlink?): refusing "
                                     "to use the root; remove it")
                _refuse_writable_by_others(st, f"{self.path / name}")

    def _check_ancestors(self) -> None:
        for folder in reversed(self.path.parents):
            st = os.stat(folder)
            sticky = st.st_mode & stat.S_ISVTX
            if st.st_uid not in (0, os.geteuid()) or (st.st_mode & 0o022 and not sticky):
                raise BpffsError(f"bpffs state root {self.path}: folder {folder} above it may be changed by "
                                 f"others (uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})")

    @property
    def units_path(self) -> Path:
        """The folder of every unit's pin folder."""
        return self.path / "units"

    @property
    def hooks_path(self) -> Path:
        """The folder of every network namespace's interface folders."""
        return self.path / "hooks"

    def netns_path(self) -> Path:
        """The hook folders of the calling thread's network namespace: ifindexes repeat across
        namespaces, and many may share one root."""
        return self.hooks_path / f"ns{netns.current_inode()}"

    def unit_path(self, unit_name: str) -> Path:
        """A unit's pin folder, without creating it."""
        try:
            return self.units_path / folder_name(unit_name)
        except PinNameError as e:
            raise BpffsError(str(e)) from e

    def unit_dir(self, unit_name: str) -> Path:
        """A unit's pin folder, created if missing."""
        return self.make(self.unit_path(unit_name))

    def hook_path(self, ifindex: int, hook: Hook) -> Path:
        """The pin folder of one hook on one interface of this network namespace."""
        return self.netns_path() / f"if{int(ifindex)}" / Hook(hook).value

    def legacy_hook_path(self, ifindex: int, hook: Hook) -> Path:
        """Where bpfunits before namespaced hook folders pinned a hook (`hooks/if<N>/<hook>`)."""
        return self.hooks_path / f"if{int(ifindex)}" / Hook(hook).value

    def hook_dir(self, ifindex: int, hook: Hook) -> Path:
        """The pin folder of one hook on one interface, created if missing."""
        return self.make(self.hook_path(ifindex, hook))

    def make(self, folder: Path) -> Path:
        """`folder` inside the root, with every missing folder down to it created 0700."""
        with opened_folder(folder, create_below=self.path):
            return folder

    def remove_unit(self, unit_name: str) -> None:
        """Unpin everything a unit pinned (its maps lose their state once unused)."""
        remove_tree(self.unit_path(unit_name))

    def remove(self) -> None:
        """Remove the whole state root and every pin in it."""
        remove_tree(self.path)


def _refuse_writable_by_others(st: os.stat_result, what: str) -> None:
    if st.st_uid not in (0, os.geteuid()):
        raise BpffsError(f"{what} is owned by uid {st.st_uid}, not root: refusing to use it (remove it, or choose "
                         "another bpffs_root)")
    if st.st_mode & 0o022:
        raise BpffsError(f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}): refusing "
                         "to use it")
