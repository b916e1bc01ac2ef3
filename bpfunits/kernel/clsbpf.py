"""tc attachment through a direct-action cls_bpf filter on the clsact qdisc (the legacy path,
for kernels without tcx).

bpfunits owns one filter slot (prio, handle) per hook; replacing the filter in that slot is one
atomic kernel operation. The filter's program is pinned in the hook folder as ours.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from pathlib import Path

from bpfunits.hooks import Hook
from bpfunits.kernel import pins, rtnl

CLSACT_HANDLE = 0xFFFF0000
PARENTS = {Hook.TC_INGRESS: 0xFFFFFFF2, Hook.TC_EGRESS: 0xFFFFFFF3}
ETH_P_ALL = 0x0003
TCA_BPF_FLAG_ACT_DIRECT = 1
# TCA_OPTIONS attributes of a cls_bpf filter (pyroute2 leaves TCA_BPF_ID undecoded).
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


def _options(msg) -> dict[int, bytes]:
    """The raw TCA_OPTIONS attributes of a filter message, by type."""
    opts = msg.get_attr("TCA_OPTIONS")
    if opts is None:
        return {}
    raw = bytes(opts.data[opts.offset + 4 : opts.offset + opts.length])
    attrs: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(raw):
        length, kind = struct.unpack_from("=HH", raw, pos)
        if length < 4:
            break
        attrs[kind & 0x3FFF] = raw[pos + 4 : pos + length]  # without NLA_F_NESTED/BYTEORDER
        pos += (length + 3) & ~3
    return attrs


def filters(ifindex: int, hook: Hook) -> list[Filter]:
    """The cls_bpf filters on the hook, in the order the kernel runs them (its dump order)."""
    with rtnl.route(f"listing tc filters of ifindex {ifindex}") as ipr:
        try:
            msgs = list(ipr.get_filters(index=ifindex, parent=_parent(hook)))
        except rtnl.NetlinkError as e:
            if e.code == errno.EINVAL:  # no clsact qdisc: no filters
                return []
            raise
    found = []
    for msg in msgs:
        if msg.get_attr("TCA_KIND") != "bpf":
            continue
        attrs = _options(msg)
        if TCA_BPF_ID not in attrs:
            continue  # the chain head each prio reports before its filters
        flags = struct.unpack("=I", attrs.get(TCA_BPF_FLAGS, bytes(4)))[0]
        found.append(
            Filter(
                prio=msg["info"] >> 16,
                handle=msg["handle"],
                prog_id=struct.unpack("=I", attrs[TCA_BPF_ID])[0],
                name=attrs.get(TCA_BPF_NAME, b"").split(b"\0", 1)[0].decode(errors="replace"),
                direct_action=bool(flags & TCA_BPF_FLAG_ACT_DIRECT),
            )
        )
    return found


def put(ifindex: int, hook: Hook, prog_fd: int, slot: Slot, name: str) -> None:
    """Put `prog_fd` in the filter slot, replacing whatever filter is there in one step (the
    clsact qdisc is added if missing)."""
    with rtnl.route(f"adding clsact to ifindex {ifindex}") as ipr:
        try:
            ipr.tc("add", "clsact", ifindex)
        except rtnl.NetlinkError as e:
            if e.code != errno.EEXIST:
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
    """Delete the filter in our slot and its pin."""
    with rtnl.route(f"deleting the tc filter prio {slot.prio} handle {slot.handle:#x} on ifindex {ifindex}") as ipr:
        ipr.tc("del-filter", "bpf", ifindex, slot.handle, parent=_parent(hook), prio=slot.prio, protocol=ETH_P_ALL)
    (hook_dir / pins.PROG).unlink(missing_ok=True)
