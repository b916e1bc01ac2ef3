"""The pins in a hook folder that mark what bpfunits attached there.

A link backend (XDP link, tcx) pins its link as `link`: the pin keeps the link, and so the
attachment, alive after the process exits. A backend without links (XDP netlink, cls_bpf) pins
the attached program as `prog`, only so that bpfunits can later tell the program is its own.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from bpfunits.sys import bpf

LINK = "link"
PROG = "prog"


@contextmanager
def opened(path: Path) -> Iterator[int]:
    """An fd for the object pinned at `path`, closed after the block."""
    fd = bpf.obj_get(str(path))
    try:
        yield fd
    finally:
        os.close(fd)


def pin(fd: int, path: Path) -> None:
    """Pin `fd` at `path`, replacing any earlier pin there in one step (rename over it). A
    failed rename leaves no staging pin behind (one left by a killed process goes at the next
    pin of `path`)."""
    staging = path.with_name(path.name + "-new")  # bpffs refuses names with a dot
    staging.unlink(missing_ok=True)
    bpf.obj_pin(fd, str(staging))
    try:
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


@contextmanager
def unpinned(fd: int, path: Path) -> Iterator[None]:
    """Remove the pin at `path` (of the object `fd` refers to) for the block, which takes what
    it pins off its hook; if the block fails, pin it back. Unpinned first, a process killed in
    the block leaves no pin of something that no longer runs (a pinned detached link or program
    would stay in the kernel, found by nothing): a link then goes with the process's last fd,
    and a program still attached without its pin carries the chain's manifest, so the next
    apply adopts it."""
    path.unlink()
    try:
        yield
    except BaseException:
        with suppress(OSError):  # the block's error is the one to report
            pin(fd, path)
        raise


def opened_if_pinned(path: Path | str) -> int | None:
    """An fd for the object pinned at `path` (the caller's to close), or None if nothing is."""
    try:
        return bpf.obj_get(os.fspath(path))
    except bpf.BpfError as e:
        if e.errno == errno.ENOENT:
            return None
        raise


def link_info(hook_dir: Path | str) -> bpf.LinkInfo | None:
    """The link pinned in `hook_dir`, or None."""
    fd = opened_if_pinned(os.path.join(hook_dir, LINK))  # a Path join costs more than the lookup
    if fd is None:
        return None
    try:
        return bpf.link_info(fd)
    finally:
        os.close(fd)


def prog_id(hook_dir: Path | str) -> int | None:
    """The id of the program pinned in `hook_dir`, or None."""
    fd = opened_if_pinned(os.path.join(hook_dir, PROG))
    if fd is None:
        return None
    try:
        return bpf.prog_info(fd).id
    finally:
        os.close(fd)


def create_link(prog_fd: int, ifindex: int, attach_type: int, hook_dir: Path, **link_args: int) -> int:
    """Create a link and pin it in `hook_dir`; returns its id. Our fd is closed, the pin holds it."""
    fd = bpf.link_create(prog_fd, ifindex, attach_type, **link_args)
    try:
        link_id = bpf.link_info(fd).id
        pin(fd, hook_dir / LINK)
        return link_id
    except BaseException:
        bpf.link_detach(fd)  # not pinned: nothing should keep running under our name
        raise
    finally:
        os.close(fd)


def update_link(hook_dir: Path, new_prog_fd: int, old_prog_fd: int | None = None) -> None:
    """Swap the program of the pinned link atomically (only if it runs `old_prog_fd`, when given)."""
    with opened(hook_dir / LINK) as fd:
        bpf.link_update(fd, new_prog_fd, old_prog_fd=old_prog_fd)


def detach_link(hook_dir: Path) -> None:
    """Unpin the pinned link and detach it now, whoever else holds it (see `unpinned`)."""
    with opened(hook_dir / LINK) as fd, unpinned(fd, hook_dir / LINK):
        bpf.link_detach(fd)
