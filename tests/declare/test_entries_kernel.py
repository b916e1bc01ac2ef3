"""[Map] entries on the kernel: IPv4 frames through a veth into the example filter (and rate limiter)
show declared entries and globals taking effect, an exact policy removing what was not declared,
and apply repairing an entry deleted by hand."""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from pathlib import Path

import pytest

from bpfunits.cli import main
from bpfunits.state.bpffs import folder_name
from bpfunits.sys import bpf, netns
from tests import examples_frames as f
from tests.timing import scaled
from tests.traffic import send_frames
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
EXAMPLES = Path(__file__).resolve().parents[2] / "bpf" / "examples"
ETH_P_IP = 0x0800
DENIED, OTHER = "198.19.66.5", "198.19.77.5"
FRAMES = 10


def arrivals(pair, frames: list[bytes]) -> dict[str, int]:
    """Send the frames from B into A's XDP hook; per IPv4 source, how many arrived on A."""
    with netns.inside(pair.ns_a):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        sock.bind((pair.if_a, ETH_P_IP))
    counts: dict[str, int] = {}
    with sock:
        sock.settimeout(scaled(0.3))
        send_frames(pair.ns_b, pair.if_b, frames)
        deadline = time.monotonic() + scaled(3)
        while sum(counts.values()) < len(frames) and time.monotonic() < deadline:
            try:
                data = sock.recv(2048)
            except TimeoutError:
                break
            src = socket.inet_ntoa(data[26:30])
            counts[src] = counts.get(src, 0) + 1
    return counts


def cli(capsys, pair, units: Path, root, command: str = "apply", *extra: str) -> dict:
    code = main([command, "--netns", pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(root.path), "--json",
                 *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def filter_unit(pair, entries: str, policy: str = "exact") -> str:
    return (f"[Program]\nObject={EXAMPLES / 'filter.bpf.o'}\n[Attach]\nHook=xdp\nInterfaces={pair.if_a}\n"
            f"[Map]\nPolicy=prefixes_v4 {policy}\n{entries}")


def prefix_key(prefix: str) -> bytes:
    addr, length = prefix.split("/")
    return struct.pack("<I", int(length)) + socket.inet_aton(addr)


@pytest.mark.matrix
def test_declared_deny_prefix_exact_removal_and_repair(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "filter.unit", filter_unit(veth_pair, "Entry=prefixes_v4 198.19.66.0/24 2\n"))
    planned = cli(capsys, veth_pair, units, bpffs_root, "plan")
    assert [(e["change"], e["map"], e["key"], e["value"]) for e in planned["entries"]] == [
        ("+", "prefixes_v4", "198.19.66.0/24", "2")]
    doc = cli(capsys, veth_pair, units, bpffs_root)
    assert len(doc["entries"]) == 1 and doc["hooks"][0]["outcome"] == "applied"
    frames = [f.udp_v4(DENIED) for _ in range(FRAMES)] + [f.udp_v4(OTHER) for _ in range(FRAMES)]
    assert arrivals(veth_pair, frames) == {OTHER: FRAMES}, "the declared deny prefix drops"
    assert cli(capsys, veth_pair, units, bpffs_root)["entries"] == [], "a second apply writes nothing"

    pinned = bpf.obj_get(str(bpffs_root.unit_path("filter") / folder_name("prefixes_v4")))
    try:
        bpf.map_update(pinned, prefix_key("198.19.77.0/24"), struct.pack("<I", 2))  # by hand
        assert arrivals(veth_pair, frames) == {}
        status = cli(capsys, veth_pair, units, bpffs_root, "status", "--maps")
        assert [(m["key"], m["value"], m["state"]) for m in status["maps"]] == [
            ("198.19.66.0/24", "2", "ok"), ("198.19.77.0/24", "2", "undeclared")]
        doc = cli(capsys, veth_pair, units, bpffs_root)
        assert [(e["change"], e["key"]) for e in doc["entries"]] == [("-", "198.19.77.0/24")]
        assert doc["hooks"][0]["outcome"] == "unchanged", "entries are written with no relink"
        assert arrivals(veth_pair, frames) == {OTHER: FRAMES}, "the exact policy removed the undeclared entry"

        bpf.map_delete(pinned, prefix_key("198.19.66.0/24"))  # drift
        assert arrivals(veth_pair, frames) == {DENIED: FRAMES, OTHER: FRAMES}
        status = cli(capsys, veth_pair, units, bpffs_root, "status", "--maps")
        assert [(m["key"], m["state"]) for m in status["maps"]] == [("198.19.66.0/24", "missing")]
        doc = cli(capsys, veth_pair, units, bpffs_root)
        assert [(e["change"], e["key"]) for e in doc["entries"]] == [("+", "198.19.66.0/24")]
        assert arrivals(veth_pair, frames) == {OTHER: FRAMES}, "apply restored the declared entry"

        # merge leaves entries it did not declare; changing a value is one update.
        write(units, "filter.unit", filter_unit(veth_pair, "Entry=prefixes_v4 198.19.66.0/24 1\n", "merge"))
        bpf.map_update(pinned, prefix_key("198.19.77.0/24"), struct.pack("<I", 2))
        doc = cli(capsys, veth_pair, units, bpffs_root)
        assert [(e["change"], e["key"], e["found"], e["value"]) for e in doc["entries"]] == [
            ("~", "198.19.66.0/24", "2", "1")]
        assert arrivals(veth_pair, frames) == {DENIED: FRAMES}
    finally:
        os.close(pinned)


def test_global_changes_the_rate_limits_drop_count(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"

    def limit(burst: int) -> None:
        write(units, "ratelimit.unit", f"[Program]\nObject={EXAMPLES / 'ratelimit.bpf.o'}\nGlobal=default_rate=1\n"
                                       f"Global=default_burst={burst}\n[Attach]\nHook=xdp\nInterfaces={veth_pair.if_a}\n")
        cli(capsys, veth_pair, units, bpffs_root)

    limit(3)
    assert arrivals(veth_pair, [f.syn("198.19.1.1") for _ in range(FRAMES)]) == {"198.19.1.1": 3}
    limit(6)
    assert arrivals(veth_pair, [f.syn("198.19.1.2") for _ in range(FRAMES)]) == {"198.19.1.2": 6}
