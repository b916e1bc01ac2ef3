"""Test traffic: raw Ethernet frames sent and counted through AF_PACKET sockets inside namespaces.

Frames carry the IEEE "local experimental" EtherType, which no stack in the namespaces answers
or forwards, so every counted frame is one a test sent.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from bpfunits.hooks import Hook
from bpfunits.sys import netns
from tests.timing import scaled

ETH_P_TEST = 0x88B5
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_STATISTICS = 6
BROADCAST = b"\xff" * 6
SOURCE = bytes.fromhex("02b0f0000001")


def frame(seq: int = 0, size: int = 60) -> bytes:
    """A broadcast test frame of `size` bytes whose payload starts with `seq`."""
    header = BROADCAST + SOURCE + struct.pack("!H", ETH_P_TEST)
    payload = struct.pack("!I", seq)
    return header + payload + bytes(max(0, size - len(header) - len(payload)))


def _packet_socket(ns: str | None, ifname: str) -> socket.socket:
    with netns.inside(ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_TEST))
        sock.bind((ifname, ETH_P_TEST))
    return sock


def send_frames(ns: str | None, ifname: str, frames: Iterable[bytes]) -> int:
    """Send every frame out of `ifname` in namespace `ns`; returns how many were sent."""
    sent = 0
    with _packet_socket(ns, ifname) as sock:
        for f in frames:
            sock.send(f)
            sent += 1
    return sent


class Sender:
    """Sends test frames out of an interface from a thread until stopped or `limit` is reached."""

    def __init__(self, ns: str | None, ifname: str, limit: int = 200_000) -> None:
        self._sock = _packet_socket(ns, ifname)
        self._limit = limit
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        data = frame()
        while self.sent < self._limit and not self._stop.is_set():
            try:
                self._sock.send(data)
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                continue  # dropped on the way out (device queue full): not sent, not counted
            self.sent += 1

    def __enter__(self) -> Sender:
        self._thread.start()
        return self

    def wait_sent(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + scaled(timeout)
        while self.sent < n and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.001)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=scaled(30))
        self._sock.close()
        return self.sent

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Receiver:
    """Counts test frames arriving at an interface (not the ones it sends), from a thread.

    `arrived` includes frames the socket dropped for lack of buffer, so it is what reached the
    interface's packet taps even under load."""

    def __init__(self, ns: str | None, ifname: str) -> None:
        self._sock = _packet_socket(ns, ifname)
        self._sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: we are root
        self._stop = threading.Event()
        self.received = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if not ready:
                continue
            while True:
                try:
                    _, addr = self._sock.recvfrom(2048, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if addr[2] != PACKET_OUTGOING:
                    self.received += 1

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def wait_for(self, n: int, timeout: float = 5.0) -> int:
        """Wait until `n` frames arrived or `timeout` passed; returns the count so far."""
        deadline = time.monotonic() + scaled(timeout)
        while self.received < n and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.received

    def settle(self, quiet: float = 0.2, timeout: float = 10.0) -> int:
        """Wait until no frame arrived for `quiet` seconds (bounded by `timeout`); returns the count."""
        deadline, quiet = time.monotonic() + scaled(timeout), scaled(quiet)
        last, since = self.received, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            if self.received != last:
                last, since = self.received, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return self.received

    def stop(self) -> int:
        """Stop counting; returns `arrived`."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=scaled(5))
            # PACKET_STATISTICS resets on read: read it once, after the last frame.
            _, self.dropped = struct.unpack("II", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        return self.arrived

    @property
    def arrived(self) -> int:
        return self.received + self.dropped

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._sock.close()


def through_hook(pair, hook: Hook, n: int) -> int:
    """Send `n` test frames through the hook on `pair`'s A side (from B into A for xdp and
    tc-ingress, out of A to B for tc-egress); returns how many arrived at the other end."""
    sender, receiver = (pair.ns_b, pair.if_b), (pair.ns_a, pair.if_a)
    if hook is Hook.TC_EGRESS:
        sender, receiver = receiver, sender
    with Receiver(*receiver) as rx:
        send_frames(*sender, [frame(i) for i in range(n)])
        rx.wait_for(n)
        return rx.stop()


class Flow:
    """Frames flowing from (ns_tx, if_tx) to (ns_rx, if_rx), sent and counted in a child process
    so that neither competes for this process's interpreter lock with what a test does
    meanwhile. Stops when told (or at `limit` frames); then `sent` and `arrived` are set."""

    def __init__(self, ns_tx: str, if_tx: str, ns_rx: str, if_rx: str, limit: int = 2_000_000) -> None:
        self._args = [ns_tx, if_tx, ns_rx, if_rx, str(limit)]
        self.sent = self.arrived = -1

    def __enter__(self) -> Flow:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.traffic", *self._args],
            cwd=Path(__file__).resolve().parents[1], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self._proc.stdout.readline().strip() == "flowing"
        return self

    def stop(self) -> None:
        out, _ = self._proc.communicate(timeout=scaled(60))  # closing its stdin tells it to stop
        self.sent, self.arrived = map(int, out.split())

    def __exit__(self, *exc: object) -> None:
        if self._proc.returncode is None:
            self._proc.kill()
            self._proc.wait()


def _flow(ns_tx: str, if_tx: str, ns_rx: str, if_rx: str, limit: str) -> None:
    with Receiver(ns_rx, if_rx) as rx, Sender(ns_tx, if_tx, int(limit)) as tx:
        tx.wait_sent(1000)
        print("flowing", flush=True)
        sys.stdin.read()
        sent = tx.stop()
        rx.settle()
        print(sent, rx.stop(), flush=True)


if __name__ == "__main__":
    _flow(*sys.argv[1:])
