"""tc attachment through a direct-action cls_bpf filter on the clsact qdisc (the legacy path,
for kernels without tcx).

bpfunits owns one filter slot (prio, handle) per hook; replacing the filter in that slot is one
atomic kernel operation. The filter's program is pinned in the hook folder as ours.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from bpfunits.hooks import Hook
from bpfunits.state import pins
from bpfunits.sys import nlread, rtnl

CLSACT_HANDLE = 0xFFFF0000
PARENTS = {Hook.TC_INGRESS: 0xFFFFFFF2, Hook.TC_EGRESS: 0xFFFFFFF3}
ETH_P_ALL = 0x0003
TCA_BPF_FLAG_ACT_DIRECT = 1
# TCA_OPTIONS attributes of a cls_bpf filter.
TCA_BPF_NAME = 7
TCA_BPF_FLAGS = 8
TCA_BPF_ID = 11


@dataclass(frozen=True)
class Slot:
    """Where bpfunits' filter sits: it runs before filters of a higher prio."""

    prio: int = 1
    handle: int = 0xB0F


@dataclass(frozen=True)
class Filter:
    prio: int
    handle: int
    prog_id: int
    name: str  # the filter's name, e.g. "file.o:[section]" from tc
    direct_action: bool


def _parent(hook: Hook) -> int:
    try:
        return PARENTS[hook]
    except KeyError:
        raise ValueError(f"{hook.value} is not a tc hook") from None


def filters(ifindex: int, hook: Hook) -> list[Filter]:
    """The cls_bpf filters on the hook, in the order the kernel runs them (its dump order)."""
    try:
        found = nlread.filters(ifindex, _parent(hook), f"listing tc filters of ifindex {ifindex}")
    except rtnl.RtnlError as e:
        if e.errno == errno.EINVAL:  # no clsact qdisc: no filters
            return []
        raise
    return [
        Filter(
            prio=f.info >> 16,
            handle=f.handle,
            prog_id=nlread.u32(f.options[TCA_BPF_ID]),
            name=nlread.string(f.options.get(TCA_BPF_NAME)),
            direct_action=bool(nlread.u32(f.options.get(TCA_BPF_FLAGS)) & TCA_BPF_FLAG_ACT_DIRECT),
        )
        # The chain head each prio reports before its filters carries no program.
        for f in found if f.kind == "bpf" and TCA_BPF_ID in f.options
    ]


def with_filters(qdiscs: list[nlread.TcObject]) -> frozenset[int]:
    """The interfaces among `qdiscs`' that can hold tc filters (a clsact or ingress qdisc): on
    any other, listing filters is wasted work."""
    return frozenset(q.ifindex for q in qdiscs if q.kind in ("clsact", "ingress"))


def put(ifindex: int, hook: Hook, prog_fd: int, slot: Slot, name: str) -> None:
    """Put `prog_fd` in the filter slot, replacing whatever filter is there in one step (the
    clsact qdisc is added if missing)."""
    try:
        with rtnl.route(f"adding clsact to ifindex {ifindex}") as ipr:
            ipr.tc("add", "clsact", ifindex)
    except rtnl.RtnlError as e:
        if e.errno != errno.EEXIST:
            raise
    with rtnl.route(f"replacing the tc filter prio {slot.prio} handle {slot.handle:#x} on ifindex {ifindex}") as ipr:
        ipr.tc(
            "replace-filter", "bpf", ifindex, slot.handle,
            fd=prog_fd, name=name, parent=_parent(hook), prio=slot.prio, protocol=ETH_P_ALL, direct_action=True,
        )


def install(ifindex: int, hook: Hook, prog_fd: int, hook_dir: Path, slot: Slot, name: str = "bpfunits") -> None:
    """Put `prog_fd` in our filter slot (see `put`) and pin it as ours."""
    put(ifindex, hook, prog_fd, slot, name)
    pins.pin(prog_fd, hook_dir / pins.PROG)


def remove(ifindex: int, hook: Hook, hook_dir: Path, slot: Slot) -> None:
    """Delete the filter in our slot, and its pin (first: see pins.unpinned)."""
    pinned = hook_dir / pins.PROG
    if not pinned.exists():
        delete(ifindex, hook, slot)
        return
    with pins.opened(pinned) as ours, pins.unpinned(ours, pinned):
        delete(ifindex, hook, slot)


def delete(ifindex: int, hook: Hook, slot: Slot) -> None:
    """Delete the filter in the slot."""
    with rtnl.route(f"deleting the tc filter prio {slot.prio} handle {slot.handle:#x} on ifindex {ifindex}") as ipr:
        ipr.tc("del-filter", "bpf", ifindex, slot.handle, parent=_parent(hook), prio=slot.prio, protocol=ETH_P_ALL)
