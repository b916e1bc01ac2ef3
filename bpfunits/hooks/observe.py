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
from typing import NamedTuple
from pathlib import Path

from bpfunits.hooks import Hook
from bpfunits.hooks import clsbpf, libxdp, probe, tcx, xdp
from bpfunits.state import pins
from bpfunits.sys import bpf, rtnl
from bpfunits.state import bpffs
from bpfunits.state.bpffs import StateRoot
from bpfunits.linker.manifest import Manifest, read_manifest


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


class Known(NamedTuple):
    """A program's facts, both read: its info (without its run counts, which change) and its
    manifest (None: it carries none)."""

    info: bpf.ProgInfo
    manifest: Manifest | None


class ProgramFacts:
    """What never changes while a program exists, by program id: its name and tag, and its
    manifest (sealed when the chain was made). Program ids are not reused while the kernel
    runs, so these are read once; the daemon keeps one ProgramFacts across reconciles, and a
    CLI process starts from what the last one knew (reconcile.factcache)."""

    def __init__(self, known: dict[int, Known] | None = None) -> None:
        self._infos: dict[int, bpf.ProgInfo | None] = {i: k.info for i, k in (known or {}).items()}
        self._manifests: dict[int, Manifest | None] = {i: k.manifest for i, k in (known or {}).items()}

    def known(self) -> dict[int, Known]:
        """Every program whose info and manifest were both read, run counts left out."""
        return {i: Known(replace(info, run_cnt=0, run_time_ns=0), self._manifests[i])
                for i, info in self._infos.items() if info is not None and i in self._manifests}

    def info(self, prog_id: int) -> bpf.ProgInfo | None:
        """None when the program went away since it was listed."""
        if prog_id not in self._infos:
            try:
                fd = bpf.prog_get_fd_by_id(prog_id)
            except bpf.BpfError as e:
                if e.errno == errno.ENOENT:
                    return None  # not remembered: an id is never absent and present again
                raise
            try:
                self._infos[prog_id] = bpf.prog_info(fd)
            finally:
                os.close(fd)
        return self._infos[prog_id]

    def manifest(self, prog_id: int) -> Manifest | None:
        """The program's manifest; None when it carries none or went away (BpfError on any other
        failure to read it)."""
        if prog_id not in self._manifests:
            try:
                info = self.info(prog_id)
                self._manifests[prog_id] = read_manifest(prog_id, info.map_ids) if info else None
            except bpf.BpfError as e:
                if e.errno == errno.ENOENT:
                    return None
                raise
        return self._manifests[prog_id]

    def sweep(self, keep: set[int]) -> None:
        """Forget every program but those of `keep` (the ones still on some hook)."""
        for table in (self._infos, self._manifests):
            for prog_id in set(table) - keep:
                del table[prog_id]


class _Claim:
    """Which programs on one hook are bpfunits' own: (ours, adopt) for a program and its link.
    Reading the hook's pins fails (and so does observing the hook) when they are not what
    bpfunits pins there."""

    def __init__(self, owner: str, folders: list[_Folder], facts: ProgramFacts) -> None:
        """`folders`: where the hook's pins may be."""
        self.owner = owner
        self.facts = facts
        self.links: dict[int, bool] = {}  # pinned link id -> pinned in its own hook folder
        self.link_infos: list[bpf.LinkInfo] = []  # the pinned links, as read with the pins
        self.progs: dict[int, bool] = {}
        for folder in folders:
            if folder.may_hold(pins.LINK) and (link := pins.link_info(folder.path)) is not None:
                self.links.setdefault(link.id, folder.home)
                self.link_infos.append(link)
            if folder.may_hold(pins.PROG) and (prog := pins.prog_id(folder.path)) is not None:
                self.progs.setdefault(prog, folder.home)

    def __call__(self, prog_id: int, link_id: int | None) -> tuple[bool, bool]:
        home = self.links.get(link_id) if link_id else self.progs.get(prog_id)
        if home is not None:
            return True, not home
        manifest = self.facts.manifest(prog_id)
        return (True, True) if manifest is not None and manifest.owner == self.owner else (False, False)


@dataclass(frozen=True)
class _Folder:
    """A folder that may pin what runs on a hook."""

    home: bool  # the hook's own folder (else where versions before namespaced folders pinned it)
    path: str  # made for each of thousands of hooks: a string costs less than a Path
    names: frozenset[str] | None  # what it holds, as listed; None: not listed, look

    def may_hold(self, name: str) -> bool:
        return self.names is None or name in self.names


@dataclass(frozen=True)
class _PinFolders:
    """Where the root pins the hooks of this network namespace."""

    root: StateRoot
    netns: Path
    listed: bpffs.Listing | None  # the netns folder, two levels down; None: not listed, look in each
    legacy: frozenset[str] | None  # the `if<N>` folders in the layout before namespaced folders

    def of(self, ifindex: int, hook: Hook) -> list[_Folder]:
        """The folders that may pin what runs on a hook: its own, and where versions before
        namespaced folders put it. A listed hook folder is asked only for the pins it holds: a
        thousand hooks then cost no thousand failed lookups of the pin they do not have."""
        name = f"if{ifindex}"
        own = f"{self.netns}/{name}/{hook.value}"
        found = []
        if self.listed is None:
            found.append(_Folder(True, own, None))
        elif name in self.listed:
            hooks = self.listed[name]
            if hooks is None or hook.value in hooks:
                pinned = hooks[hook.value] if hooks is not None else None
                found.append(_Folder(True, own, frozenset(pinned) if pinned is not None else None))
        if self.legacy is None or name in self.legacy:
            found.append(_Folder(False, str(self.root.legacy_hook_path(ifindex, hook)), None))
        return found


class Observer:
    """Reads hooks of the calling thread's network namespace. With `whole_namespace`, what one
    request answers for every interface is asked once, when first needed: the XDP programs (one
    interface dump), which interfaces can hold tc filters (one qdisc dump), the XDP links, which
    interfaces have pin folders; so reading a thousand hooks costs what they hold, not a
    thousand requests each. Without, each observe() reads its hook afresh (right before changing
    it). Programs' names, tags and manifests come from `facts`."""

    def __init__(self, root: StateRoot, facts: ProgramFacts | None = None, *, whole_namespace: bool = False):
        self.root = root
        self.facts = facts if facts is not None else ProgramFacts()
        self.whole_namespace = whole_namespace
        self._interfaces: dict[int, rtnl.Interface] | None = None
        self._with_filters: frozenset[int] | None = None
        self._xdp_links: dict[tuple[int, int], int] | None = None
        self._pin_folders: _PinFolders | None = None
        # Kernels without tcx (before 6.6) refuse the query itself (EINVAL): nothing runs there.
        self._tcx = probe.features().has(probe.TCX_QUERY)

    def observe(self, ifindex: int, hook: Hook) -> Observation:
        """Everything on one hook of one interface (RtnlError ENODEV when it is gone)."""
        claim = _Claim(str(self.root.path), self._folders().of(ifindex, hook), self.facts)
        if hook is Hook.XDP:
            return self._observe_xdp(ifindex, claim)
        return self._observe_tc(ifindex, hook, claim)

    def _folders(self) -> _PinFolders:
        if not self.whole_namespace:
            return _PinFolders(self.root, self.root.netns_path(), None, None)
        if self._pin_folders is None:
            netns = self.root.netns_path()
            legacy = frozenset(bpffs.names(self.root.hooks_path))
            self._pin_folders = _PinFolders(self.root, netns, bpffs.listing(netns, 2), legacy)
        return self._pin_folders

    def interface(self, ifindex: int) -> rtnl.Interface:
        if not self.whole_namespace:
            return rtnl.interface(ifindex)
        if self._interfaces is None:
            self._interfaces = rtnl.interfaces()
        if ifindex not in self._interfaces:
            raise rtnl.RtnlError(f"reading interface ifindex {ifindex}", errno.ENODEV)
        return self._interfaces[ifindex]

    def program_ids(self, ifindex: int, hook: Hook) -> frozenset[int]:
        """The ids of the programs on one hook, and nothing else: the cheapest look at it."""
        if hook is Hook.XDP:
            return frozenset({xdp.state_of(self.interface(ifindex)).prog_id} - {0})
        ids = set(tcx.query(ifindex, hook).prog_ids) if self._tcx else set()
        if self._may_hold_filters(ifindex):
            ids.update(f.prog_id for f in clsbpf.filters(ifindex, hook))
        return frozenset(ids)

    def _attached(self, prog_id: int, link_id: int | None, backend: Backend, mode: str | None,
                  claim: _Claim) -> Attached:
        info = self.facts.info(prog_id)
        ours, adopt = claim(prog_id, link_id)
        return Attached(prog_id, info.name if info else "", info.tag if info else "", link_id, backend, mode, ours,
                        adopt=adopt)

    def _xdp_link_id(self, ifindex: int, prog_id: int, claim: _Claim) -> int | None:
        """The XDP link running `prog_id` on `ifindex`: one we pinned, else found among all links."""
        for pinned in claim.link_infos:
            if _runs(pinned, ifindex, prog_id):
                return pinned.id
        # The pins were read just before the interface: a link updated in between runs another
        # program now. Read again, it costs a request per pin, not a listing of every link.
        for pinned in claim.link_infos:
            info = _link_info(pinned.id)
            if info is not None and _runs(info, ifindex, prog_id):
                return info.id
        if self._xdp_links is None or not self.whole_namespace:
            self._xdp_links = {}
            for link_id in bpf.link_ids():
                info = _link_info(link_id)
                if info is not None and info.type == bpf.LinkType.XDP:
                    self._xdp_links[(info.ifindex, info.prog_id)] = info.id
        return self._xdp_links.get((ifindex, prog_id))

    def _observe_xdp(self, ifindex: int, claim: _Claim) -> Observation:
        state = xdp.state_of(self.interface(ifindex))
        if not state.prog_id:
            return Observation(ifindex, Hook.XDP, None, ())
        link_id = self._xdp_link_id(ifindex, state.prog_id, claim)
        backend = Backend.XDP_NETLINK if link_id is None else Backend.XDP_LINK
        attached = self._attached(state.prog_id, link_id, backend, state.mode, claim)
        if not attached.ours:
            attached = replace(attached, dispatcher=libxdp.dispatcher_of(state.prog_id, ifindex))
        return Observation(ifindex, Hook.XDP, None, (attached,))

    def _may_hold_filters(self, ifindex: int) -> bool:
        if not self.whole_namespace:
            return True
        if self._with_filters is None:
            self._with_filters = clsbpf.with_filters(rtnl.qdiscs())
        return ifindex in self._with_filters

    def _observe_tc(self, ifindex: int, hook: Hook, claim: _Claim) -> Observation:
        query = tcx.query(ifindex, hook) if self._tcx else bpf.Query((), (), 0)
        programs = [
            self._attached(prog_id, link_id or None, Backend.TCX, None, claim)
            for prog_id, link_id in zip(query.prog_ids, query.link_ids, strict=True)
        ]
        # Legacy clsact filters run after tcx, when tcx lets the packet go on.
        if self._may_hold_filters(ifindex):
            programs += [
                self._attached(f.prog_id, None, Backend.CLS_BPF, f"prio {f.prio} handle {f.handle:#x}", claim)
                for f in clsbpf.filters(ifindex, hook)
            ]
        return Observation(ifindex, hook, query.revision, tuple(programs))


def _link_info(link_id: int) -> bpf.LinkInfo | None:
    try:
        fd = bpf.link_get_fd_by_id(link_id)
    except bpf.BpfError:
        return None  # went away meanwhile
    try:
        return bpf.link_info(fd)
    finally:
        os.close(fd)


def _runs(info: bpf.LinkInfo, ifindex: int, prog_id: int) -> bool:
    # Link ids are global and ifindexes per namespace, but the program id pins it down.
    return info.type == bpf.LinkType.XDP and info.prog_id == prog_id and info.ifindex == ifindex


def observe(ifindex: int, hook: Hook, root: StateRoot) -> Observation:
    """Everything on one hook of one interface, read now (in the calling thread's network
    namespace)."""
    return Observer(root).observe(ifindex, hook)
