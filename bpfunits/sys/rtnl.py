"""Route netlink, without pyroute2: one request and its answer, encoded and parsed with struct,
for the few messages and attributes bpfunits reads and changes. A node with a thousand
interfaces is listed in one dump of a few milliseconds, where pyroute2 spends that on each
message; and importing pyroute2 took longer than a whole `bpfunits plan` of a small node.
All calls act in the calling thread's network namespace.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from bpfunits.errors import BpfUnitsError


class RtnlError(BpfUnitsError, OSError):
    """A netlink request failed; `.errno` holds the kernel's error."""

    def __init__(self, what: str, err: int, detail: str = "") -> None:
        self.message = f"{what}: {os.strerror(err)}" + (f" ({detail})" if detail else "")
        OSError.__init__(self, err, self.message)

    def __str__(self) -> str:
        return self.message


NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
# Flags of a new object's request ...
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
# ... and of an error's answer: the request's payload left out, extended ack attributes after it.
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_SETLINK = 19
RTM_NEWQDISC = 36
RTM_DELQDISC = 37
RTM_GETQDISC = 38
RTM_NEWTFILTER = 44
RTM_DELTFILTER = 45
RTM_GETTFILTER = 46

IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_XDP = 43
IFLA_XDP_ATTACHED = 2
IFLA_XDP_PROG_ID = 4
IFLA_XDP_DRV_PROG_ID = 5
IFLA_XDP_SKB_PROG_ID = 6
IFLA_XDP_HW_PROG_ID = 7
TCA_KIND = 1
TCA_OPTIONS = 2

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_TCMSG = struct.Struct("=BxxxiIII")
_RTA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_S32 = struct.Struct("=i")
_ERRNO = _S32  # struct nlmsgerr's error, negative
_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
_RECV_SIZE = 1 << 16


def attributes(data: bytes | memoryview, start: int = 0, end: int | None = None,
               wanted: frozenset[int] | None = None) -> dict[int, memoryview]:
    """The attributes (rtattr/nlattr) in data[start:end], by type (only those of `wanted`, when
    given: an interface message holds dozens, and the walk ends once it has them all); a
    malformed tail ends the walk."""
    view = memoryview(data)
    end = len(view) if end is None else end
    found: dict[int, memoryview] = {}
    unpack = _RTA.unpack_from
    pos = start
    while pos + _RTA.size <= end:
        length, kind = unpack(view, pos)
        if length < _RTA.size or pos + length > end:
            break
        kind &= _NLA_TYPE_MASK
        if wanted is None or kind in wanted:
            found[kind] = view[pos + 4 : pos + length]
            if wanted is not None and len(found) == len(wanted):
                break
        pos += (length + 3) & ~3
    return found


def u32(value: memoryview | None) -> int:
    return _U32.unpack_from(value)[0] if value is not None and len(value) >= _U32.size else 0


def string(value: memoryview | None) -> str:
    return bytes(value).split(b"\0", 1)[0].decode(errors="replace") if value is not None else ""


@dataclass(frozen=True)
class Message:
    kind: int  # nlmsg_type
    seq: int
    body: memoryview  # after the netlink header
    flags: int  # nlmsg_flags


def messages(data: bytes) -> Iterator[Message]:
    """The netlink messages in one datagram."""
    view = memoryview(data)
    pos = 0
    while pos + _NLMSGHDR.size <= len(view):
        length, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(view, pos)
        if length < _NLMSGHDR.size or pos + length > len(view):
            return
        yield Message(kind, seq, view[pos + _NLMSGHDR.size : pos + length], flags)
        pos += (length + 3) & ~3


def error_of(message: Message) -> int:
    """The (positive) errno an NLMSG_ERROR carries; 0 for an acknowledgement."""
    return -_ERRNO.unpack_from(message.body)[0] if len(message.body) >= _ERRNO.size else errno.EIO


def said(message: Message) -> str:
    """The kernel's own words in an error (its extended ack message), "" where it gave none."""
    if not message.flags & NLM_F_ACK_TLVS or len(message.body) < _ERRNO.size + _NLMSGHDR.size:
        return ""
    start = _ERRNO.size + _NLMSGHDR.size  # struct nlmsgerr: the error, then the request's header ...
    if not message.flags & NLM_F_CAPPED:  # ... and its payload, unless capped
        start = _ERRNO.size + ((_NLMSGHDR.unpack_from(message.body, _ERRNO.size)[0] + 3) & ~3)
    return string(attributes(message.body, start).get(NLMSGERR_ATTR_MSG))


def attr(kind: int, value: bytes) -> bytes:
    """One attribute, padded to 4 bytes; a nested one's value is its attributes joined."""
    return _RTA.pack(_RTA.size + len(value), kind) + value + b"\0" * (-len(value) % 4)


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, _U32.pack(value))


def attr_s32(kind: int, value: int) -> bytes:
    return attr(kind, _S32.pack(value))


def attr_string(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def packet(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """One netlink message: its header, then `body` (the family's header and attributes)."""
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def request(kind: int, header: bytes, what: str, *, dump: bool = False, flags: int = 0,
            attrs: bytes = b"") -> list[Message]:
    """Send one request and collect its answer: every message of a dump up to NLMSG_DONE, or
    the single reply; a change (`flags` holds NLM_F_ACK) returns [] once acknowledged. A
    netlink error raises RtnlError naming `what`, with the kernel's words where it gave them."""
    seq = 1
    flags |= NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        # Errors in words (4.12) and without our request echoed back (4.3).
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.send(packet(kind, flags, seq, header + attrs))
        found: list[Message] = []
        while True:
            data = sock.recv(_RECV_SIZE)
            for message in messages(data):
                if message.seq != seq:
                    continue
                if message.kind == NLMSG_DONE:
                    return found
                if message.kind == NLMSG_ERROR:
                    code = error_of(message)
                    if code:
                        raise RtnlError(what, code, said(message))
                    return found
                found.append(message)
                if not dump:
                    return found


# --- interfaces -----------------------------------------------------------------------------------

# IFLA_XDP_ATTACHED values, and the attribute holding the program's id in that mode.
XDP_ATTACHED_DRV, XDP_ATTACHED_SKB, XDP_ATTACHED_HW, XDP_ATTACHED_MULTI = 1, 2, 3, 4
_XDP_ID_ATTRS = (IFLA_XDP_PROG_ID, IFLA_XDP_DRV_PROG_ID, IFLA_XDP_SKB_PROG_ID, IFLA_XDP_HW_PROG_ID)
_LINK_ATTRS = frozenset({IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_XDP})
_TC_ATTRS = frozenset({TCA_KIND, TCA_OPTIONS})


@dataclass(frozen=True)
class Interface:
    """One interface as RTM_NEWLINK reports it, as far as bpfunits cares."""

    index: int
    name: str
    xdp_attached: int  # IFLA_XDP_ATTACHED: 0 none, else XDP_ATTACHED_*
    xdp_prog_ids: tuple[tuple[int, int], ...]  # (IFLA_XDP_*PROG_ID attribute, id) for those set
    mtu: int = 0
    kind: str = ""  # IFLA_INFO_KIND: the link type of a virtual device ("veth"), "" for hardware

    @property
    def xdp_prog_id(self) -> int:
        """The program the kernel reports first (the one of its mode; with several modes, the
        generic IFLA_XDP_PROG_ID is absent and the driver's comes first)."""
        return self.xdp_prog_ids[0][1] if self.xdp_prog_ids else 0


def interface_of(message: Message) -> Interface | None:
    """An interface message (RTM_NEWLINK/RTM_DELLINK of the whole device), else None."""
    if message.kind not in (RTM_NEWLINK, RTM_DELLINK) or len(message.body) < _IFINFOMSG.size:
        return None
    family, _type, index, _flags, _change = _IFINFOMSG.unpack_from(message.body)
    if family != socket.AF_UNSPEC:
        return None  # e.g. AF_BRIDGE port messages, which say nothing about the device itself
    attrs = attributes(message.body, _IFINFOMSG.size, wanted=_LINK_ATTRS)
    xdp = attributes(attrs[IFLA_XDP]) if IFLA_XDP in attrs else {}
    attached = xdp[IFLA_XDP_ATTACHED][0] if len(xdp.get(IFLA_XDP_ATTACHED, b"")) >= 1 else 0
    ids = tuple((a, u32(xdp[a])) for a in _XDP_ID_ATTRS if u32(xdp.get(a)))
    info = attributes(attrs[IFLA_LINKINFO]) if IFLA_LINKINFO in attrs else {}
    return Interface(index, string(attrs.get(IFLA_IFNAME)) or f"ifindex {index}", attached, ids,
                     u32(attrs.get(IFLA_MTU)), string(info.get(IFLA_INFO_KIND)))


def link_header(ifindex: int = 0) -> bytes:
    """The struct ifinfomsg a link request starts with: of one interface, or of all."""
    return _IFINFOMSG.pack(socket.AF_UNSPEC, 0, ifindex, 0, 0)


def interfaces() -> dict[int, Interface]:
    """Every interface of this network namespace, by ifindex."""
    found = (interface_of(m) for m in request(RTM_GETLINK, link_header(), "listing interfaces", dump=True))
    return {link.index: link for link in found if link is not None}


def interface(ifindex: int) -> Interface:
    """One interface (ENODEV as RtnlError when it does not exist)."""
    for message in request(RTM_GETLINK, link_header(ifindex), f"reading interface ifindex {ifindex}", dump=False):
        found = interface_of(message)
        if found is not None and found.index == ifindex:
            return found
    raise RtnlError(f"reading interface ifindex {ifindex}", errno.ENODEV)


# --- tc ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TcObject:
    """A qdisc or filter message: its tcmsg fields, kind and raw options."""

    ifindex: int
    handle: int
    parent: int
    info: int
    kind: str
    options: dict[int, memoryview]


def _tc_object(message: Message, *, with_options: bool = True) -> TcObject | None:
    if len(message.body) < _TCMSG.size:
        return None
    _family, ifindex, handle, parent, info = _TCMSG.unpack_from(message.body)
    attrs = attributes(message.body, _TCMSG.size, wanted=_TC_ATTRS)
    options = attributes(attrs[TCA_OPTIONS]) if with_options and TCA_OPTIONS in attrs else {}
    return TcObject(ifindex, handle, parent, info, string(attrs.get(TCA_KIND)), options)


def tc_header(ifindex: int, handle: int, parent: int, info: int = 0) -> bytes:
    """The struct tcmsg a qdisc or filter request starts with (a filter's info: prio << 16 |
    protocol in network order)."""
    return _TCMSG.pack(socket.AF_UNSPEC, ifindex, handle, parent, info)


def qdiscs() -> list[TcObject]:
    """Every qdisc of this network namespace (without their options)."""
    header = tc_header(0, 0, 0)
    found = (_tc_object(m, with_options=False) for m in request(RTM_GETQDISC, header, "listing qdiscs", dump=True)
             if m.kind == RTM_NEWQDISC)
    return [q for q in found if q is not None]


def filters(ifindex: int, parent: int, what: str) -> list[TcObject]:
    """The filters under `parent` of one interface, in the kernel's dump order."""
    header = tc_header(ifindex, 0, parent)
    found = (_tc_object(m) for m in request(RTM_GETTFILTER, header, what, dump=True) if m.kind == RTM_NEWTFILTER)
    return [f for f in found if f is not None]
