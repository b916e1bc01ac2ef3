"""XDP attachment: a pinned bpf_link (preferred), or the netlink IFLA_XDP attribute (fallback).

Replacing and detaching a link go through `pins` (update/detach the pinned link); this module
holds what is XDP-specific: modes, the netlink backend, and reading what an interface runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bpfunits.state import pins
from bpfunits.sys import bpf, rtnl

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4
# IFLA_XDP's attributes for setting a program.
IFLA_XDP_FD = 1
IFLA_XDP_FLAGS = 3
IFLA_XDP_EXPECTED_FD = 8


class XdpMode(str, Enum):
    AUTO = "auto"  # the kernel picks: driver mode when the device has it, generic otherwise
    DRIVER = "driver"
    GENERIC = "generic"

    @property
    def flags(self) -> int:
        return {XdpMode.AUTO: 0, XdpMode.DRIVER: XDP_FLAGS_DRV_MODE, XdpMode.GENERIC: XDP_FLAGS_SKB_MODE}[self]


# IFLA_XDP_ATTACHED: our name for the mode, and the flags that address a program in it.
_ATTACHED = {
    rtnl.XDP_ATTACHED_DRV: ("driver", XDP_FLAGS_DRV_MODE),
    rtnl.XDP_ATTACHED_SKB: ("generic", XDP_FLAGS_SKB_MODE),
    rtnl.XDP_ATTACHED_HW: ("offload", XDP_FLAGS_HW_MODE),
    rtnl.XDP_ATTACHED_MULTI: ("multi", 0),
}


@dataclass(frozen=True)
class XdpState:
    """What runs at an interface's XDP hook, as netlink reports it."""

    prog_id: int  # 0: nothing
    mode: str | None  # driver, generic, offload, multi
    mode_flags: int  # the XDP_FLAGS_*_MODE that address the attached program


def state_of(link: rtnl.Interface) -> XdpState:
    if not link.xdp_attached or link.xdp_attached not in _ATTACHED:
        return XdpState(0, None, 0)
    mode, flags = _ATTACHED[link.xdp_attached]
    return XdpState(link.xdp_prog_id, mode, flags)


def state(ifindex: int) -> XdpState:
    return state_of(rtnl.interface(ifindex))


def attach_link(ifindex: int, prog_fd: int, hook_dir: Path, mode: XdpMode) -> int:
    """Attach through a bpf_link pinned in `hook_dir`; returns the link id. Fails with EBUSY
    when the interface runs an XDP program already."""
    return pins.create_link(prog_fd, ifindex, bpf.AttachType.XDP, hook_dir, flags=mode.flags)


def netlink_set(ifindex: int, prog_fd: int, flags: int, expected_fd: int | None = None) -> None:
    """Set the interface's XDP program through netlink (-1: none), as `ip link set xdp` does."""
    attrs = rtnl.attr_s32(IFLA_XDP_FD, prog_fd)
    if expected_fd is not None:
        flags |= XDP_FLAGS_REPLACE
        attrs += rtnl.attr_s32(IFLA_XDP_EXPECTED_FD, expected_fd)
    attrs += rtnl.attr_u32(IFLA_XDP_FLAGS, flags)
    rtnl.request(rtnl.RTM_SETLINK, rtnl.link_header(ifindex), f"setting IFLA_XDP on ifindex {ifindex}",
                 flags=rtnl.NLM_F_ACK, attrs=rtnl.attr(rtnl.IFLA_XDP, attrs))


def attach_netlink(ifindex: int, prog_fd: int, hook_dir: Path, mode: XdpMode) -> None:
    """Attach through netlink, only if the interface runs no XDP program (else EBUSY), and pin
    the program in `hook_dir` as ours."""
    netlink_set(ifindex, prog_fd, mode.flags | XDP_FLAGS_UPDATE_IF_NOEXIST)
    pins.pin(prog_fd, hook_dir / pins.PROG)


def replace_netlink(ifindex: int, new_prog_fd: int, hook_dir: Path, expected_fd: int) -> None:
    """Swap the netlink-attached program for `new_prog_fd` in one step, only if it still is
    `expected_fd` (else EEXIST), and pin the new one as ours."""
    netlink_set(ifindex, new_prog_fd, state(ifindex).mode_flags, expected_fd)
    pins.pin(new_prog_fd, hook_dir / pins.PROG)


def detach_netlink(ifindex: int, hook_dir: Path) -> None:
    """Remove our netlink-attached program, only if it still is the one pinned in `hook_dir`,
    and its pin (first: see pins.unpinned)."""
    with pins.opened(hook_dir / pins.PROG) as ours, pins.unpinned(ours, hook_dir / pins.PROG):
        netlink_set(ifindex, -1, state(ifindex).mode_flags, expected_fd=ours)
