"""Listening to route netlink for interfaces that appear, vanish or are renamed, and for XDP
programs that someone else attaches, replaces or detaches.

A raw netlink socket, its messages parsed by rtnl (a listing of a thousand interfaces every
few seconds must cost next to nothing): its file descriptor can be waited on together with a
wake-up pipe, so close() stops the listener at once.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bpfunits.daemon.trigger import Trigger
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.sys import netns as netns_mod
from bpfunits.sys import rtnl
from bpfunits.sys.rtnl import NLMSG_DONE, NLMSG_ERROR, RTM_GETLINK, RTM_NEWLINK
from bpfunits.order.graph import HookKey
from bpfunits.reconcile.memory import EVERYTHING, Changes

RTMGRP_LINK = 1

_RCVBUF = 1 << 20
_RECV_SIZE = 1 << 16

# The kernel announces an XDP change only when it is made through netlink on an interface that
# is up (do_setlink -> netdev_state_change); one made through a bpf_link, or on a down
# interface, says nothing. So the interfaces are also listed every few seconds and compared:
# every POLL_INTERVAL seconds, or less often on a node where a listing takes long, so that the
# listing costs at most POLL_SHARE of a core: at 2,000 interfaces a listing takes ~25 ms of CPU,
# so one every ~10 s. (The resync, every 30 s by default, compares every hook bpfunits runs.)
POLL_INTERVAL = 2.0
POLL_SHARE = 0.0025


class InterfaceMonitorError(BpfUnitsError):
    pass


@dataclass(frozen=True)
class InterfaceState:
    """What we compare between two messages about one interface."""

    name: str
    # IFLA_XDP_ATTACHED and the *_PROG_ID attributes that are set; () when no XDP program runs
    xdp: tuple[int, tuple[tuple[int, int], ...]] | tuple[()]

    @property
    def xdp_progs(self) -> frozenset[int]:
        return frozenset(prog_id for _, prog_id in self.xdp[1]) if self.xdp else frozenset()


def interface_state(link: rtnl.Interface) -> InterfaceState:
    return InterfaceState(link.name, (link.xdp_attached, link.xdp_prog_ids) if link.xdp_attached else ())


def change(old: InterfaceState | None, new: InterfaceState | None) -> Trigger | None:
    """The trigger for one interface going from `old` to `new` (None: absent), if any."""
    if old is None:
        if new is None:
            return None
        return Trigger("interfaces", f"{new.name} appeared", dirty=Changes(interfaces=frozenset({new.name})))
    if new is None:
        return Trigger("interfaces", f"{old.name} disappeared", dirty=Changes(interfaces=frozenset({old.name})))
    if new.name != old.name:
        return Trigger("interfaces", f"{old.name} renamed {new.name}",
                       dirty=Changes(interfaces=frozenset({old.name, new.name})))
    if new.xdp != old.xdp:
        return Trigger("xdp", new.name, interface=new.name, xdp_progs=new.xdp_progs,
                       dirty=Changes(hooks=frozenset({HookKey(new.name, Hook.XDP)})))
    return None


def _dump_request(seq: int) -> bytes:
    return rtnl.packet(RTM_GETLINK, rtnl.NLM_F_REQUEST | rtnl.NLM_F_DUMP, seq, rtnl.link_header())


class InterfaceMonitor:
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
        self._interfaces: dict[int, InterfaceState] = {}
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._dump_started = 0.0
        self._dump_cost = 0.0

    @property
    def interfaces(self) -> dict[int, InterfaceState]:
        return dict(self._interfaces)

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

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise InterfaceMonitorError("the interface monitor is not started")
        return self._sock

    def _request_dump(self) -> int:
        self._seq += 1
        self._socket().send(_dump_request(self._seq))
        self._dump_started = time.thread_time()
        return self._seq

    def _next_poll(self) -> float:
        """When to list again: the listing just done cost `_dump_cost` s of this thread's CPU."""
        return time.monotonic() + max(self._poll_interval, self._dump_cost / POLL_SHARE)

    def _snapshot(self) -> None:
        """Learn the present interfaces from a dump, silently."""
        seq = self._request_dump()
        while True:
            for msg in self._receive():
                if msg.kind == NLMSG_ERROR and rtnl.error_of(msg):
                    raise InterfaceMonitorError(f"netlink: listing interfaces: {os.strerror(rtnl.error_of(msg))}")
                if msg.kind == NLMSG_DONE and msg.seq == seq:
                    return
                link = rtnl.interface_of(msg)
                if link is not None and msg.kind == RTM_NEWLINK:
                    self._interfaces[link.index] = interface_state(link)
                elif link is not None:
                    self._interfaces.pop(link.index, None)

    def _receive(self) -> list[rtnl.Message]:
        return list(rtnl.messages(self._socket().recv(_RECV_SIZE)))

    def _listen(self) -> None:
        poll_at = time.monotonic() + self._poll_interval
        pending: int | None = None  # the sequence number of a dump under way
        try:
            while True:
                timeout = max(0.0, poll_at - time.monotonic())
                watched: list[socket.socket | int] = [self._socket(), self._wake_r]
                ready, _, _ = select.select(watched, [], [], timeout)
                if self._wake_r in ready:
                    return
                if time.monotonic() >= poll_at:
                    # One dump at a time: netlink refuses a second one on the socket (EBUSY).
                    if pending is None:
                        pending = self._request_dump()
                    poll_at = self._next_poll()
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
                    self._emit(Trigger("interfaces", "netlink messages lost", dirty=EVERYTHING))
                    poll_at = time.monotonic()
                    continue
                for msg in msgs:
                    if msg.kind in (NLMSG_DONE, NLMSG_ERROR) and msg.seq == pending:
                        if msg.kind == NLMSG_ERROR and rtnl.error_of(msg):
                            self._log.warning("netlink: polling interfaces: %s", os.strerror(rtnl.error_of(msg)))
                        pending = None
                        self._dump_cost = time.thread_time() - self._dump_started
                        poll_at = self._next_poll()
                    self._handle(msg)
        except Exception:
            self._log.exception("netlink listener stopped; only timer resyncs will notice interface changes")

    def _handle(self, msg: rtnl.Message) -> None:
        link = rtnl.interface_of(msg)
        if link is None:
            return  # not about a device itself (e.g. AF_BRIDGE port messages)
        new = interface_state(link) if msg.kind == RTM_NEWLINK else None
        old = self._interfaces.get(link.index)
        if new is None:
            self._interfaces.pop(link.index, None)
        else:
            self._interfaces[link.index] = new
        trigger = change(old, new)
        if trigger is not None:
            self._emit(trigger)
