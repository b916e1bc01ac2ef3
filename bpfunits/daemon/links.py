"""Listening to route netlink for interfaces that appear, vanish or are renamed, and for XDP
programs that someone else attaches, replaces or detaches.

A raw netlink socket (pyroute2 only parses the messages): its file descriptor can be waited on
together with a wake-up pipe, so close() stops the listener at once.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK, RTMGRP_LINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from bpfunits.daemon.trigger import Trigger
from bpfunits.errors import BpfUnitsError
from bpfunits.kernel import netns as netns_mod

_RCVBUF = 1 << 20
_RECV_SIZE = 1 << 16

# The kernel announces an XDP change only when it is made through netlink on an interface that
# is up (do_setlink -> netdev_state_change); one made through a bpf_link, or on a down
# interface, says nothing. So the interfaces are also listed every few seconds and compared.
POLL_INTERVAL = 2.0


class LinkMonitorError(BpfUnitsError):
    pass


@dataclass(frozen=True)
class LinkState:
    """What we compare between two messages about one interface."""

    name: str
    xdp: tuple[tuple[str, object], ...]  # IFLA_XDP_ATTACHED and the *_PROG_ID attributes that are set

    @property
    def xdp_progs(self) -> frozenset[int]:
        return frozenset(int(v) for k, v in self.xdp if k.endswith("PROG_ID"))


def link_state(msg: ifinfmsg) -> LinkState:
    xdp = msg.get_attr("IFLA_XDP")
    attrs = xdp["attrs"] if xdp else []
    return LinkState(
        name=msg.get_attr("IFLA_IFNAME") or f"ifindex {msg['index']}",
        xdp=tuple(sorted((k, v) for k, v in attrs if v and (k == "IFLA_XDP_ATTACHED" or k.endswith("PROG_ID")))),
    )


def change(old: LinkState | None, new: LinkState | None) -> Trigger | None:
    """The trigger for one interface going from `old` to `new` (None: absent), if any."""
    if old is None and new is not None:
        return Trigger("interfaces", f"{new.name} appeared")
    if new is None:
        return Trigger("interfaces", f"{old.name} disappeared") if old is not None else None
    if new.name != old.name:
        return Trigger("interfaces", f"{old.name} renamed {new.name}")
    if new.xdp != old.xdp:
        return Trigger("xdp", new.name, interface=new.name, xdp_progs=new.xdp_progs)
    return None


def _dump_request(seq: int) -> bytes:
    ifinfomsg = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)
    header = struct.pack("=IHHII", 16 + len(ifinfomsg), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    return header + ifinfomsg


class LinkMonitor:
    """Calls `emit` with an "interfaces" or "xdp" trigger for each change seen in namespace
    `netns` (None: the caller's), from events and from a listing every `poll_interval` seconds.
    start() returns once the current interfaces are known, so only later changes are reported."""

    def __init__(
        self,
        emit: Callable[[Trigger], None],
        log: logging.Logger,
        netns: str | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._emit = emit
        self._poll_interval = poll_interval
        self._log = log
        self._netns = netns
        self._links: dict[int, LinkState] = {}
        self._marshal = MarshalRtnl()
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._seq = 0

    @property
    def links(self) -> dict[int, LinkState]:
        return dict(self._links)

    def start(self) -> None:
        # The socket belongs to the namespace it was opened in, whatever the thread does later.
        with netns_mod.inside(self._netns):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            sock.bind((0, RTMGRP_LINK))  # subscribe before the dump: no change falls between
            self._sock = sock
            self._snapshot()
        except BaseException:
            sock.close()
            self._sock = None
            raise
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._listen, name="bpfunits-netlink", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join()
            self._thread = None
            os.close(self._wake_r)
            os.close(self._wake_w)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _request_dump(self) -> int:
        self._seq += 1
        self._sock.send(_dump_request(self._seq))
        return self._seq

    def _snapshot(self) -> None:
        """Learn the present interfaces from a dump, silently."""
        seq = self._request_dump()
        while True:
            for msg in self._receive():
                kind = msg["header"]["type"]
                if kind == NLMSG_ERROR and msg["header"].get("error"):
                    raise LinkMonitorError(f"netlink: listing interfaces: {msg['header']['error']}")
                if kind == NLMSG_DONE and msg["header"]["sequence_number"] == seq:
                    return
                if kind == RTM_NEWLINK and msg["family"] == socket.AF_UNSPEC:
                    self._links[msg["index"]] = link_state(msg)
                elif kind == RTM_DELLINK:
                    self._links.pop(msg["index"], None)

    def _receive(self) -> list[ifinfmsg]:
        return list(self._marshal.parse(self._sock.recv(_RECV_SIZE)))

    def _listen(self) -> None:
        poll_at = time.monotonic() + self._poll_interval
        pending: int | None = None  # the sequence number of a dump under way
        try:
            while True:
                timeout = max(0.0, poll_at - time.monotonic())
                ready, _, _ = select.select([self._sock, self._wake_r], [], [], timeout)
                if self._wake_r in ready:
                    return
                if time.monotonic() >= poll_at:
                    # One dump at a time: netlink refuses a second one on the socket (EBUSY).
                    if pending is None:
                        pending = self._request_dump()
                    poll_at = time.monotonic() + self._poll_interval
                if self._sock not in ready:
                    continue
                try:
                    msgs = self._receive()
                except OSError as e:
                    if e.errno != errno.ENOBUFS:
                        raise
                    # The kernel dropped messages: we cannot tell which, so resync, and compare
                    # against a fresh dump as soon as the one under way (if any) is over.
                    self._log.warning("netlink: messages lost (receive buffer overrun); resyncing")
                    self._emit(Trigger("interfaces", "netlink messages lost"))
                    poll_at = time.monotonic()
                    continue
                for msg in msgs:
                    kind = msg["header"]["type"]
                    if kind in (NLMSG_DONE, NLMSG_ERROR) and msg["header"]["sequence_number"] == pending:
                        if kind == NLMSG_ERROR and msg["header"].get("error"):
                            self._log.warning("netlink: polling interfaces: %s", msg["header"]["error"])
                        pending = None
                    self._handle(msg)
        except Exception:
            self._log.exception("netlink listener stopped; only timer resyncs will notice interface changes")

    def _handle(self, msg: ifinfmsg) -> None:
        kind = msg["header"]["type"]
        if kind not in (RTM_NEWLINK, RTM_DELLINK) or msg["family"] != socket.AF_UNSPEC:
            return  # e.g. AF_BRIDGE port messages, which say nothing about the device itself
        index = msg["index"]
        new = link_state(msg) if kind == RTM_NEWLINK else None
        old = self._links.get(index)
        if new is None:
            self._links.pop(index, None)
        else:
            self._links[index] = new
        trigger = change(old, new)
        if trigger is not None:
            self._emit(trigger)
