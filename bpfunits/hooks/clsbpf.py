"""tc attachment through a direct-action cls_bpf filter on the clsact qdisc (the legacy path,
for kernels without tcx).

bpfunits owns one filter slot (prio, handle) per hook; replacing the filter in that slot is one
atomic kernel operation. The filter's program is pinned in the hook folder as ours.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path

from bpfunits.hooks import Hook
from bpfunits.state import pins
from bpfunits.sys import rtnl

CLSACT_HANDLE = 0xFFFF0000
TC_H_CLSACT = 0xFFFFFFF1
PARENTS = {Hook.TC_INGRESS: 0xFFFFFFF2, Hook.TC_EGRESS: 0xFFFFFFF3}
ETH_P_ALL = 0x0003
TCA_BPF_FLAG_ACT_DIRECT = 1
# TCA_OPTIONS attributes of a cls_bpf filter.
TCA_BPF_FD = 6
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
        found = rtnl.filters(ifindex, _parent(hook), f"listing tc filters of ifindex {ifindex}")
    except rtnl.RtnlError as e:
        if e.errno == errno.EINVAL:  # no clsact qdisc: no filters
            return []
        raise
    return [
        Filter(
            prio=f.info >> 16,
            handle=f.handle,
            prog_id=rtnl.u32(f.options[TCA_BPF_ID]),
            name=rtnl.string(f.options.get(TCA_BPF_NAME)),
            direct_action=bool(rtnl.u32(f.options.get(TCA_BPF_FLAGS)) & TCA_BPF_FLAG_ACT_DIRECT),
        )
        # The chain head each prio reports before its filters carries no program.
        for f in found if f.kind == "bpf" and TCA_BPF_ID in f.options
    ]


def with_filters(qdiscs: list[rtnl.TcObject]) -> frozenset[int]:
    """The interfaces among `qdiscs`' that can hold tc filters (a clsact or ingress qdisc): on
    any other, listing filters is wasted work."""
    return frozenset(q.ifindex for q in qdiscs if q.kind in ("clsact", "ingress"))


def put(ifindex: int, hook: Hook, prog_fd: int, slot: Slot, name: str) -> None:
    """Put `prog_fd` in the filter slot, replacing whatever filter is there in one step (the
    clsact qdisc is added if missing)."""
    try:
        add_clsact(ifindex)
    except rtnl.RtnlError as e:
        if e.errno != errno.EEXIST:
            raise
    options = (rtnl.attr_u32(TCA_BPF_FD, prog_fd) + rtnl.attr_string(TCA_BPF_NAME, name)
               + rtnl.attr_u32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT))
    rtnl.request(
        rtnl.RTM_NEWTFILTER, _filter_header(ifindex, hook, slot),
        f"replacing the tc filter prio {slot.prio} handle {slot.handle:#x} on ifindex {ifindex}",
        flags=rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE,
        attrs=rtnl.attr_string(rtnl.TCA_KIND, "bpf") + rtnl.attr(rtnl.TCA_OPTIONS, options),
    )


def add_clsact(ifindex: int) -> None:
    """Add the clsact qdisc (EEXIST as RtnlError when the interface has one)."""
    rtnl.request(rtnl.RTM_NEWQDISC, rtnl.tc_header(ifindex, CLSACT_HANDLE, TC_H_CLSACT),
                 f"adding clsact to ifindex {ifindex}", flags=rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL,
                 attrs=rtnl.attr_string(rtnl.TCA_KIND, "clsact"))


def delete_clsact(ifindex: int) -> None:
    """Delete the clsact qdisc, and every tc filter on it."""
    rtnl.request(rtnl.RTM_DELQDISC, rtnl.tc_header(ifindex, CLSACT_HANDLE, TC_H_CLSACT),
                 f"deleting clsact of ifindex {ifindex}", flags=rtnl.NLM_F_ACK,
                 attrs=rtnl.attr_string(rtnl.TCA_KIND, "clsact"))


def _filter_header(ifindex: int, hook: Hook, slot: Slot) -> bytes:
    return rtnl.tc_header(ifindex, slot.handle, _parent(hook), slot.prio << 16 | socket.htons(ETH_P_ALL))


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
    rtnl.request(rtnl.RTM_DELTFILTER, _filter_header(ifindex, hook, slot),
                 f"deleting the tc filter prio {slot.prio} handle {slot.handle:#x} on ifindex {ifindex}",
                 flags=rtnl.NLM_F_ACK, attrs=rtnl.attr_string(rtnl.TCA_KIND, "bpf"))
