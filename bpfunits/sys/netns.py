"""Running a block of code inside a named network namespace, and finding interfaces there.

Only the calling thread moves (setns(2) on a thread), so the mount namespace, and with it our
bpffs mount, stays. Python 3.11 has no os.setns, hence ctypes.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from bpfunits.errors import BpfUnitsError
from bpfunits.sys.libc import libc as _libc

CLONE_NEWNET = 0x40000000
SIOCGIFMTU = 0x8921
NETNS_RUN_DIR = "/run/netns"


class NetnsError(BpfUnitsError):
    pass


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns: {os.strerror(err)}")


def ns_path(name: str) -> str:
    return name if name.startswith("/") else os.path.join(NETNS_RUN_DIR, name)


@contextmanager
def _returning_home() -> Iterator[None]:
    """Bring this thread back to the network namespace it is in now when the block ends.
    The thread's own namespace, not the process's: another thread may have moved already."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield
    finally:
        try:
            _setns(home)
        finally:
            os.close(home)


@contextmanager
def inside(name: str | None) -> Iterator[None]:
    """Run the block with this thread in network namespace `name` (a name under /run/netns or a
    path); None stays where we are. Sockets opened inside keep the namespace after the block."""
    if name is None:
        yield
        return
    try:
        target = os.open(ns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsError(f"network namespace {name!r} does not exist") from None
    with _returning_home():
        try:
            _setns(target)
        finally:
            os.close(target)
        yield


class Scratch:
    """One fresh, empty network namespace for a run of short experiments (the feature probes),
    made at the first use and entered again at each: every namespace made costs the kernel a
    teardown after its last use, serialized with every other namespace's. `close()` lets it go."""

    def __init__(self) -> None:
        self._fd: int | None = None

    @contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block with this thread in the namespace."""
        with _returning_home():
            if self._fd is None:
                if _libc.unshare(CLONE_NEWNET) != 0:
                    raise NetnsError(f"unshare: {os.strerror(ctypes.get_errno())}")
                self._fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            else:
                _setns(self._fd)
            yield

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def ifindex(ifname: str, ns: str | None = None) -> int:
    """The ifindex of `ifname` in namespace `ns` (None: the current one)."""
    with inside(ns):
        try:
            return socket.if_nametoindex(ifname)
        except OSError:
            where = f" in network namespace {ns!r}" if ns else ""
            raise NetnsError(f"no interface {ifname!r}{where}") from None


def mtu(ifname: str) -> int:
    """The MTU of `ifname` in the calling thread's namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            reply = fcntl.ioctl(sock, SIOCGIFMTU, struct.pack("16si", ifname.encode(), 0))
        except OSError:
            raise NetnsError(f"no interface {ifname!r}") from None
    return int(struct.unpack("16si", reply)[1])


def current_inode() -> int:
    """The inode of the calling thread's network namespace: what tells namespaces apart on
    every kernel (SO_NETNS_COOKIE, which is never reused, came only in 5.14)."""
    return os.stat("/proc/thread-self/ns/net").st_ino
