"""What runs on a hook, as the kernel reports it, and which of it bpfunits attached.

A program is bpfunits' own when the hook folder of this network namespace pins it, or the folder
of the same ifindex in the layout before namespaces had folders (`hooks/if<N>`), or when it
carries a sealed manifest naming this state root: that last way finds a chain whose pin a kill
between attach and pin lost. Both of the latter are `adopt`ed: apply pins them in their folder.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, replace
from enum import Enum

from bpfunits.hooks import Hook
from bpfunits.kernel import bpf, clsbpf, libxdp, pins, probe, tcx, xdp
from bpfunits.kernel.bpffs import StateRoot
from bpfunits.link.manifest import read_manifest


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
    adopt: bool = False  # ours, but not pinned in its hook folder (see the module's doc)


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


def _attached(prog_id: int, link_id: int | None, backend: Backend, mode: str | None, claim: _Claim) -> Attached:
    info = _prog_info(prog_id)
    ours, adopt = claim(prog_id, link_id)
    return Attached(prog_id, info.name if info else "", info.tag if info else "", link_id, backend, mode, ours,
                    adopt=adopt)


class _Claim:
    """Which programs on one hook are bpfunits' own: (ours, adopt) for a program and its link."""

    def __init__(self, root: StateRoot, ifindex: int, hook: Hook) -> None:
        self.owner = str(root.path)
        self.links: dict[int, bool] = {}  # pinned link id -> pinned in its own hook folder
        self.progs: dict[int, bool] = {}
        for home, folder in ((True, root.hook_path(ifindex, hook)), (False, root.legacy_hook_path(ifindex, hook))):
            if (link := pins.link_info(folder)) is not None:
                self.links.setdefault(link.id, home)
            if (prog := pins.prog_id(folder)) is not None:
                self.progs.setdefault(prog, home)

    def __call__(self, prog_id: int, link_id: int | None) -> tuple[bool, bool]:
        home = self.links.get(link_id) if link_id else self.progs.get(prog_id)
        if home is not None:
            return True, not home
        return (True, True) if self._owned(prog_id) else (False, False)

    def _owned(self, prog_id: int) -> bool:
        try:
            manifest = read_manifest(prog_id)
        except bpf.BpfError as e:
            if e.errno == errno.ENOENT:  # went away since it was listed
                return False
            raise
        return manifest is not None and manifest.owner == self.owner


def _xdp_link_id(ifindex: int, prog_id: int, claim: _Claim) -> int | None:
    """The XDP link running `prog_id` on `ifindex`: one we pinned, else found among all links."""
    for link_id in [*claim.links, *bpf.link_ids()]:
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


def _observe_xdp(ifindex: int, claim: _Claim) -> Observation:
    state = xdp.state(ifindex)
    if not state.prog_id:
        return Observation(ifindex, Hook.XDP, None, ())
    link_id = _xdp_link_id(ifindex, state.prog_id, claim)
    backend = Backend.XDP_NETLINK if link_id is None else Backend.XDP_LINK
    attached = _attached(state.prog_id, link_id, backend, state.mode, claim)
    if not attached.ours:
        attached = replace(attached, dispatcher=libxdp.dispatcher_of(state.prog_id, ifindex))
    return Observation(ifindex, Hook.XDP, None, (attached,))


def _observe_tc(ifindex: int, hook: Hook, claim: _Claim) -> Observation:
    # Kernels without tcx (before 6.6) refuse the query itself (EINVAL): nothing runs there.
    query = tcx.query(ifindex, hook) if probe.features().has(probe.TCX_QUERY) else bpf.Query((), (), 0)
    programs = [
        _attached(prog_id, link_id or None, Backend.TCX, None, claim)
        for prog_id, link_id in zip(query.prog_ids, query.link_ids)
    ]
    # Legacy clsact filters run after tcx, when tcx lets the packet go on.
    programs += [
        _attached(f.prog_id, None, Backend.CLS_BPF, f"prio {f.prio} handle {f.handle:#x}", claim)
        for f in clsbpf.filters(ifindex, hook)
    ]
    return Observation(ifindex, hook, query.revision, tuple(programs))


def observe(ifindex: int, hook: Hook, root: StateRoot) -> Observation:
    """Everything on one hook of one interface (in the calling thread's network namespace)."""
    claim = _Claim(root, ifindex, hook)
    if hook is Hook.XDP:
        return _observe_xdp(ifindex, claim)
    return _observe_tc(ifindex, hook, claim)
