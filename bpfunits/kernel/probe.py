"""What this kernel offers for attaching, found once by trying it where nothing real can be
touched: on `lo` of a private network namespace that exists only for the probe."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from enum import Enum
from functools import cache

from bpfunits.errors import BpfUnitsError
from bpfunits.kernel import bpf, netns


class XdpBackend(str, Enum):
    AUTO = "auto"
    LINK = "link"
    NETLINK = "netlink"


class TcBackend(str, Enum):
    AUTO = "auto"
    TCX = "tcx"
    CLS_BPF = "cls_bpf"


@dataclass(frozen=True)
class Features:
    xdp_link: bool
    tcx: bool


def _return(value: int) -> bytes:
    """A program that only returns `value` (mov r0, value; exit)."""
    return struct.pack("<BBhi", 0xB7, 0, 0, value) + struct.pack("<BBhi", 0x95, 0, 0, 0)


def _can_link(prog_type: int, ret: int, attach_type: int, flags: int = 0) -> bool:
    prog = bpf.prog_load(prog_type, _return(ret), name="bpfunits_probe")
    try:
        link = bpf.link_create(prog, 1, attach_type, flags=flags)  # ifindex 1: the private lo
    except bpf.BpfError:
        return False
    finally:
        os.close(prog)
    os.close(link)
    return True


@cache
def features() -> Features:
    """Probe the kernel (once per process; the answer does not change while it runs)."""
    with netns.private():
        return Features(
            xdp_link=_can_link(bpf.ProgType.XDP, 2, bpf.AttachType.XDP, flags=2),  # XDP_PASS, generic
            tcx=_can_link(bpf.ProgType.SCHED_CLS, -1, bpf.AttachType.TCX_INGRESS),  # TCX_NEXT
        )


def choose_xdp_backend(choice: XdpBackend, features: Features) -> XdpBackend:
    """The XDP backend to use: a forced one if the kernel has it, else the best it has."""
    if choice is XdpBackend.AUTO:
        return XdpBackend.LINK if features.xdp_link else XdpBackend.NETLINK
    if choice is XdpBackend.LINK and not features.xdp_link:
        raise BpfUnitsError("XDP backend 'link' was asked for, but this kernel cannot attach XDP through bpf_link")
    return choice


def choose_tc_backend(choice: TcBackend, features: Features) -> TcBackend:
    """The tc backend to use: a forced one if the kernel has it, else the best it has."""
    if choice is TcBackend.AUTO:
        return TcBackend.TCX if features.tcx else TcBackend.CLS_BPF
    if choice is TcBackend.TCX and not features.tcx:
        raise BpfUnitsError("tc backend 'tcx' was asked for, but this kernel has no tcx (needs Linux 6.6)")
    return choice
