"""The connlimit package: its XDP limiter and the tracepoint companion that takes its maps
(MapsFrom=), on real TCP connections through a veth pair to a server in the other namespace."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfunits.config import load_config
from bpfunits.hooks import eventlink
from bpfunits.hooks.events import EventHook, EventKind
from bpfunits.reconcile.engine import Result, reconcile
from bpfunits.reconcile.node import Node
from bpfunits.state import pins
from bpfunits.sys import bpf, netns
from tests.fixtures.netns import ADDR_A, ADDR_B
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parents[2]
PORT = 8080


@pytest.fixture
def package(tmp_path, veth_pair, bpffs_root) -> Iterator[tuple[Path, object]]:
    """The two units on namespace a's interface (the server's side); removed after the test."""
    units = tmp_path / "units"
    (units).mkdir()
    limiter = (ROOT / "units.example.d" / "connlimit.unit").read_text()
    write(units, "connlimit.unit", limiter.replace("../bpf", str(ROOT / "bpf"))
          .replace("Interfaces=bpfu-demo* !bpfu-demo-mgmt", f"Interfaces={veth_pair.if_a}").replace("After=ratelimit", ""))
    companion = (ROOT / "units.companions.d" / "connlimit-release.unit").read_text()
    write(units, "connlimit-release.unit", companion.replace("../bpf", str(ROOT / "bpf")))
    (tmp_path / "bpfunits.yaml").write_text(f"lock_file: {tmp_path / 'lock'}\nbpffs_root: {bpffs_root.path}\n")
    config = load_config(tmp_path / "bpfunits.yaml").override(units_dirs=[units])

    def apply(*, check: bool = True) -> Result:
        with netns.inside(veth_pair.ns_a):
            result = reconcile(config, apply=True, node=Node())
        assert not (check and result.failed), ([h.errors for h in result.hooks], [e.errors for e in result.events])
        return result

    try:
        yield units, apply
    finally:
        for f in units.iterdir():
            f.unlink()
        apply()


def open_count(root, source: str) -> int:
    with pins.opened(root.unit_path("connlimit") / "conns") as fd:
        value = bpf.map_lookup(fd, socket.inet_aton(source), 8)
    return struct.unpack("<Q", value)[0] if value else 0


def wait_count(root, want: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while (got := open_count(root, ADDR_B)) != want and time.monotonic() < deadline:
        time.sleep(0.02)
    return got


def connect(veth_pair, timeout: float = 2.0) -> socket.socket | None:
    """A connection from namespace b to the server; None if nothing answered in `timeout`."""
    with veth_pair.inside_b():
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        client.connect((ADDR_A, PORT))
    except (TimeoutError, OSError):
        client.close()
        return None
    return client


def abort(sock: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0): the peer answers nothing."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.matrix
def test_closed_connections_are_released_and_new_ones_admitted(package, veth_pair, bpffs_root):
    units, apply = package
    hook = EventHook(EventKind.TRACEPOINT, "sock/inet_sock_set_state")
    if reason := eventlink.unavailable(hook):  # 5.10: no perf links
        result = apply(check=False)
        assert [e.errors for e in result.events] == [(f"unit connlimit-release: {reason}",)]
        return
    result = apply()
    [event] = result.events
    assert (event.unit, event.hook, event.outcome) == ("connlimit-release", "tracepoint:sock/inet_sock_set_state",
                                                       "applied")
    assert not (bpffs_root.unit_path("connlimit-release")).exists()  # its maps are connlimit's
    with pins.opened(bpffs_root.unit_path("connlimit") / "config") as fd:
        bpf.map_update(fd, struct.pack("<I", 0), struct.pack("<I", 2))
    with veth_pair.inside_a():
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with server:
        server.bind((ADDR_A, PORT))
        server.listen(8)
        server.settimeout(5)

        # Two connections fill the source's quota; a third is never answered.
        clients = [connect(veth_pair), connect(veth_pair)]
        assert all(clients)
        accepted = [server.accept()[0] for _ in clients]
        assert wait_count(bpffs_root, 2) == 2
        assert connect(veth_pair, timeout=1.0) is None

        # The server aborts both: the client sends nothing back that XDP could see; the
        # companion sees the sockets close, and releases them.
        for conn in accepted:
            abort(conn)
        assert wait_count(bpffs_root, 0) == 0
        again = [connect(veth_pair), connect(veth_pair)]
        assert all(again)
        accepted = [server.accept()[0] for _ in again]
        assert wait_count(bpffs_root, 2) == 2

        # Closed by the client: released once, though XDP sees its FIN and the tracepoint both ends.
        for client in again:
            assert client is not None
            client.close()
        for conn in accepted:
            conn.close()
        assert wait_count(bpffs_root, 0) == 0
        time.sleep(0.2)
        assert open_count(bpffs_root, ADDR_B) == 0
        for client in clients:
            assert client is not None
            client.close()

        # Without the companion, a connection the server aborts keeps its slot.
        (units / "connlimit-release.unit").unlink()
        result = apply()
        assert [(e.unit, e.action, e.outcome) for e in result.events] == [("connlimit-release", "remove", "applied")]
        client = connect(veth_pair)
        assert client is not None
        abort(server.accept()[0])
        time.sleep(0.3)
        assert open_count(bpffs_root, ADDR_B) == 1
        client.close()
