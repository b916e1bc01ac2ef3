"""XDP multi-buffer (frags): a frame larger than one buffer arrives in several, and a driver in
native mode attaches only a program that declares it handles that (BPF_F_XDP_HAS_FRAGS) where
the MTU allows such frames. A chain declares it when every component does.

Whether an MTU needs frags depends on the attach mode and the driver. Generic (skb) mode takes
any MTU. In native mode each driver has its own buffer size, so `apply` lets the kernel decide
and turns its refusal into an error naming the components without frags; `plan` (and `status`)
refuse in advance only where the limit is known: veth, whose buffer is one page."""

from __future__ import annotations

import errno
import os

from bpfunits.errors import BpfUnitsError

XDP_PACKET_HEADROOM = 256
SKB_SHARED_INFO = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on 64-bit kernels
ETH_HLEN = 14
ETH_DATA_LEN = 1500  # every driver takes this MTU in one buffer
# How drivers refuse a program without frags on an MTU that needs them: veth ERANGE ("Peer MTU
# is too large to set XDP"), virtio_net and i40e EINVAL ("MTU too large to enable XDP"), some
# others EOPNOTSUPP.
MTU_REFUSALS = frozenset({errno.ERANGE, errno.EINVAL, errno.EOPNOTSUPP})
GENERIC = "generic"


class FragsNeeded(BpfUnitsError):
    pass


def single_buffer_mtu(page_size: int = os.sysconf("SC_PAGE_SIZE")) -> int:
    """The largest MTU whose frames fit veth's one XDP buffer (a page less the headroom and the
    shared info): 3506 with 4 KiB pages."""
    return page_size - XDP_PACKET_HEADROOM - SKB_SHARED_INFO - ETH_HLEN


def known_limit(kind: str, mode: str) -> int | None:
    """The largest MTU a chain without frags attaches on, where known in advance: veth in native
    mode (`mode` is the kernel's for a chain running there, else the configured one, and `auto`
    is native on veth); None in generic mode (no limit) and on other drivers (the kernel's word)."""
    return single_buffer_mtu() if kind == "veth" and mode != GENERIC else None


def _refusal(interface: str, mtu: int, without_frags: tuple[str, ...], why: str, fix: str) -> FragsNeeded:
    many = len(without_frags) > 1
    return FragsNeeded(
        f"{interface}: its MTU {mtu} needs multi-buffer XDP in native mode ({why}), and "
        f"unit{'s' if many else ''} {', '.join(without_frags)} do{'' if many else 'es'} not declare it "
        f"(SEC(\"xdp.frags\")); build {'them' if many else 'it'} with it, {fix}, or attach in generic mode "
        f"(xdp_mode: generic)"
    )


def check(interface: str, mtu: int, limit: int | None, without_frags: tuple[str, ...]) -> None:
    """Refuse in advance a chain whose components `without_frags` do not declare multi-buffer
    support, on an interface whose MTU is over the known `limit`."""
    if without_frags and limit is not None and mtu > limit:
        raise _refusal(interface, mtu, without_frags, f"frames over {limit} bytes", f"lower the MTU to {limit}")


def refused(interface: str, mtu: int, without_frags: tuple[str, ...], error: BaseException) -> FragsNeeded | None:
    """The kernel's refusal to attach a chain without frags, as the frags error naming its units
    (the errno drivers refuse an MTU with, on an MTU over Ethernet's 1500); else None. A bpf_link
    attach gives the errno alone, netlink the driver's words too: both are quoted."""
    cause = error if isinstance(error, OSError) else error.__cause__
    if not without_frags or mtu <= ETH_DATA_LEN or not isinstance(cause, OSError) or cause.errno not in MTU_REFUSALS:
        return None
    return _refusal(interface, mtu, without_frags, f"the kernel refused the chain: {cause}", "lower the MTU")
