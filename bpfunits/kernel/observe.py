"""What runs on a hook, as the kernel reports it, and which of it bpfunits attached."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from bpfunits.hooks import Hook
from bpfunits.kernel import bpf, clsbpf, libxdp, pins, probe, tcx, xdp
from bpfunits.kernel.bpffs import StateRoot


class Backend(str, Enum):
    XDP_LINK = "xdp-link"
    XDP_NETLINK = "xdp-netlink"
    TCX = "tcx"
    CLS_BPF = "cls_bpf"


@dataclass(frozen=True)
class Attached:
    prog_id: int
    name: str
    tag: str
    link_id: int | None
    backend: Backend
    mode: str | None  # XDP: driver/generic/...; cls_bpf: "prio N handle 0xH"; tcx: None
    ours: bool
    dispatcher: libxdp.Dispatcher | None = None  # a foreign XDP program that is libxdp's dispatcher


@dataclass(frozen=True)
class Observation:
    """The programs on one hook in the order the kernel runs them. `revision` is the tcx
    revision (tc hooks; 0 when tcx was never used there or the kernel has no tcx), None for XDP."""

    ifindex: int
    hook: Hook
    revision: int | None
    programs: tuple[Attached, ...]

    @property
    def ours(self) -> tuple[Attached, ...]:
        return tuple(p for p in self.programs if p.ours)

    @property
    def foreign(self) -> tuple[Attached, ...]:
        return tuple(p for p in self.programs if not p.ours)


def _prog_info(prog_id: int) -> bpf.ProgInfo | None:
    try:
        fd = bpf.prog_get_fd_by_id(prog_id)
    except bpf.BpfError as e:
        if e.errno == errno.ENOENT:  # went away since it was listed
            return None
        raise
    try:
        return bpf.prog_info(fd)
    finally:
        os.close(fd)


def _attached(prog_id: int, link_id: int | None, backend: Backend, mode: str | None, ours: bool) -> Attached:
    info = _prog_info(prog_id)
    return Attached(prog_id, info.name if info else "", info.tag if info else "", link_id, backend, mode, ours)


def _xdp_link_id(ifindex: int, prog_id: int, hook_dir: Path) -> int | None:
    """The XDP link running `prog_id` on `ifindex`: ours if pinned, else found among all links."""
    ours = pins.link_info(hook_dir)
    if ours and ours.prog_id == prog_id and ours.ifindex == ifindex:
        return ours.id
    for link_id in bpf.link_ids():
        try:
            fd = bpf.link_get_fd_by_id(link_id)
        except bpf.BpfError:
            continue  # went away meanwhile
        try:
            info = bpf.link_info(fd)
        finally:
            os.close(fd)
        # Link ids are global and ifindexes per namespace, but the program id pins it down.
        if info.type == bpf.LinkType.XDP and info.prog_id == prog_id and info.ifindex == ifindex:
            return info.id
    return None


def _observe_xdp(ifindex: int, hook_dir: Path) -> Observation:
    state = xdp.state(ifindex)
    if not state.prog_id:
        return Observation(ifindex, Hook.XDP, None, ())
    link_id = _xdp_link_id(ifindex, state.prog_id, hook_dir)
    if link_id is not None:
        our_link = pins.link_info(hook_dir)
        ours = our_link is not None and our_link.id == link_id
        backend = Backend.XDP_LINK
    else:
        ours = pins.prog_id(hook_dir) == state.prog_id
        backend = Backend.XDP_NETLINK
    attached = _attached(state.prog_id, link_id, backend, state.mode, ours)
    if not ours:
        attached = replace(attached, dispatcher=libxdp.dispatcher_of(state.prog_id, ifindex))
    return Observation(ifindex, Hook.XDP, None, (attached,))


def _observe_tc(ifindex: int, hook: Hook, hook_dir: Path) -> Observation:
    # Kernels without tcx (before 6.6) refuse the query itself (EINVAL): nothing runs there.
    query = tcx.query(ifindex, hook) if probe.features().has(probe.TCX_QUERY) else bpf.Query((), (), 0)
    our_link = pins.link_info(hook_dir)
    our_prog = pins.prog_id(hook_dir)
    programs = [
        _attached(prog_id, link_id or None, Backend.TCX, None, our_link is not None and our_link.id == link_id)
        for prog_id, link_id in zip(query.prog_ids, query.link_ids)
    ]
    # Legacy clsact filters run after tcx, when tcx lets the packet go on.
    programs += [
        _attached(f.prog_id, None, Backend.CLS_BPF, f"prio {f.prio} handle {f.handle:#x}", f.prog_id == our_prog)
        for f in clsbpf.filters(ifindex, hook)
    ]
    return Observation(ifindex, hook, query.revision, tuple(programs))


def observe(ifindex: int, hook: Hook, root: StateRoot) -> Observation:
    """Everything on one hook of one interface (in the calling thread's network namespace)."""
    hook_dir = root.hook_path(ifindex, hook)
    if hook is Hook.XDP:
        return _observe_xdp(ifindex, hook_dir)
    return _observe_tc(ifindex, hook, hook_dir)
