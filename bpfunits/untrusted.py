"""Reading a file bpfunits does not control (a unit file, a drop-in, the configuration, an object or
a source) as root: regular files only, never more than a limit, never a hang on a FIFO or a device.

With strict permissions (like sshd's StrictModes) the file and every folder on its path must be
owned by root (or this process's user) and writable by nobody else: whoever could write them could
choose what root loads into the kernel. A folder with the sticky bit (/tmp) is accepted anyway, as
nobody but an entry's owner may rename or remove it there; the file itself must still pass. Write
permission on a read-only mount counts for nothing: Kubernetes mounts ConfigMap folders of mode 0777
read-only.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from bpfunits.errors import BpfUnitsError

MiB = 1 << 20

# O_NONBLOCK: opening a FIFO swapped in after the check returns at once instead of waiting for a
# writer. O_NOFOLLOW: the path is resolved before; a symlink swapped in since is refused.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


@dataclass(frozen=True)
class FilePolicy:
    """What a file must be for bpfunits to read it (the configuration's defaults, see
    config.schema.json: the schema is what users read)."""

    strict_permissions: bool = True
    max_unit_size: int = 1 * MiB  # unit files and drop-ins
    max_object_size: int = 64 * MiB  # Object= and Source= files


class UntrustedFileError(BpfUnitsError):
    """A file bpfunits refuses to read; `problem` says why without the path, str() with it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class FileMissing(UntrustedFileError):
    pass


def read_untrusted(path: Path, max_size: int, *, strict: bool) -> bytes:
    """The bytes of the regular file at `path` (symlinks followed), read once, at most
    `max_size` of them; with `strict`, only from a file and folders nobody else may write."""
    path = Path(path)
    try:
        real = os.path.realpath(path, strict=True)
        if strict:
            _check_folders(path, Path(real))
        # Checked before opening: opening some devices has effects of its own (a watchdog arms).
        _check_kind(os.stat(real))
        fd = os.open(real, _OPEN_FLAGS)
    except ValueError:
        raise UntrustedFileError(path, "the path contains a NUL byte") from None
    except FileNotFoundError as exc:
        raise FileMissing(path, f"cannot read: {exc.strerror}") from None
    except OSError as exc:
        raise UntrustedFileError(path, f"cannot read: {exc.strerror}") from exc
    except _Refused as refused:
        raise UntrustedFileError(path, str(refused)) from None
    try:
        st = os.fstat(fd)
        _check_kind(st)  # what was opened, in case it was swapped since the check
        if strict:
            _check_owner(st, "the file", fd)
        if st.st_size > max_size:
            raise _Refused(f"the file is {st.st_size} bytes, more than the limit of {max_size}")
        data = _read_at_most(fd, max_size + 1)
        if len(data) > max_size:
            raise _Refused(f"the file grew beyond the limit of {max_size} bytes while being read")
        return data
    except _Refused as refused:
        raise UntrustedFileError(path, str(refused)) from None
    except OSError as exc:
        raise UntrustedFileError(path, f"cannot read: {exc.strerror}") from exc
    finally:
        os.close(fd)


def check_folders(path: Path) -> None:
    """Strict permissions for the folders holding `path` only, for files whose mere presence
    counts (a mask, a symlink to /dev/null, which is world-writable and must stay so)."""
    try:
        _check_folders(path, Path(os.path.realpath(path)))
    except _Refused as refused:
        raise UntrustedFileError(Path(path), str(refused)) from None
    except OSError as exc:
        raise UntrustedFileError(Path(path), f"cannot check its folders: {exc.strerror}") from exc


class _Refused(Exception):
    pass


def _check_kind(st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise _Refused(f"not a regular file ({_KINDS.get(stat.S_IFMT(st.st_mode), 'a special file')})")


def _check_folders(written: Path, real: Path) -> None:
    # The folders of the path as written hold its symlinks; those of the resolved path, the file.
    folders = dict.fromkeys([*Path(os.path.abspath(written)).parents, *real.parents])
    for folder in folders:
        _check_owner(os.stat(folder), f"folder {folder} on its path", folder, folder=True)


def _check_owner(st: os.stat_result, what: str, where: Path | int, *, folder: bool = False) -> None:
    """`where`: the path or fd of what `st` describes, to ask whether its mount is read-only."""
    if st.st_uid not in (0, os.geteuid()):
        raise _Refused(f"{what} is owned by uid {st.st_uid}, not root (strict_permissions)")
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (folder and st.st_mode & stat.S_ISVTX)
    if writable and not os.statvfs(where).f_flag & os.ST_RDONLY:
        raise _Refused(
            f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}; strict_permissions)"
        )


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit and (chunk := os.read(fd, min(limit - size, MiB))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
