"""XDP multi-buffer (frags): a frame larger than one page arrives in several buffers, and the
kernel attaches only a program that declares it handles that (BPF_F_XDP_HAS_FRAGS) where the MTU
allows such frames (veth: "Peer MTU is too large to set XDP", ERANGE). A chain declares it when
every component does; otherwise bpfunits refuses the hook itself, in plan as in apply, naming
the components that do not."""

from __future__ import annotations

import os

from bpfunits.errors import BpfUnitsError

XDP_PACKET_HEADROOM = 256
SKB_SHARED_INFO = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on 64-bit kernels
ETH_HLEN = 14


class FragsNeeded(BpfUnitsError):
    pass


def single_buffer_mtu(page_size: int = os.sysconf("SC_PAGE_SIZE")) -> int:
    """The largest MTU whose frames fit one XDP buffer (a page less the headroom and the shared
    info), as veth and most drivers compute it: 3506 with 4 KiB pages."""
    return page_size - XDP_PACKET_HEADROOM - SKB_SHARED_INFO - ETH_HLEN


def check(interface: str, mtu: int, without_frags: tuple[str, ...]) -> None:
    """Refuse an XDP chain whose components `without_frags` do not declare multi-buffer
    support, on an interface whose MTU needs it."""
    limit = single_buffer_mtu()
    if without_frags and mtu > limit:
        raise FragsNeeded(
            f"{interface}: its MTU {mtu} needs multi-buffer XDP (frames over {limit} bytes), and "
            f"unit{'s' if len(without_frags) > 1 else ''} {', '.join(without_frags)} "
            f"do{'es' if len(without_frags) == 1 else ''} not declare it (SEC(\"xdp.frags\")); "
            f"build {'them' if len(without_frags) > 1 else 'it'} with it, or lower the MTU to {limit}"
        )
