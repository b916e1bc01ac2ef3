"""The daemon keeps declared map entries: one deleted by hand is restored (and logged) at the next
resync, and an edited unit's entries are written without a relink."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest

from bpfunits.state.bpffs import folder_name
from bpfunits.sys import bpf
from tests.kernel.test_daemon import daemon, drop, eventually  # noqa: F401 (daemon: the fixture)

pytestmark = pytest.mark.kernel
EXAMPLES = Path(__file__).resolve().parents[2] / "bpf" / "examples"


def prefix_key(prefix: str) -> bytes:
    addr, length = prefix.split("/")
    return struct.pack("<I", int(length)) + socket.inet_aton(addr)


def filter_unit(interface: str, *prefixes: str) -> str:
    entries = "".join(f"Entry=prefixes_v4 {p} 2\n" for p in prefixes)
    return f"[Program]\nObject={EXAMPLES / 'filter.bpf.o'}\n[Attach]\nHook=xdp\nInterfaces={interface}\n[Map]\n{entries}"


def test_daemon_restores_an_entry_deleted_by_hand_and_writes_edited_ones(
        daemon, tmp_path, veth_pair, bpffs_root):  # noqa: F811 (the fixture)
    units = tmp_path / "units"
    drop(units, "filter.unit", filter_unit(veth_pair.if_a, "198.19.66.0/24"))
    d = daemon()
    pin = bpffs_root.unit_path("filter") / folder_name("prefixes_v4")
    eventually(pin.exists, 10, "the filter's maps pinned")
    fd = bpf.obj_get(str(pin))
    try:
        def holds(prefix: str) -> bool:
            return bpf.map_lookup(fd, prefix_key(prefix), 4) == struct.pack("<I", 2)

        assert eventually(lambda: holds("198.19.66.0/24"), 10, "the declared entry written")
        prog = d.prog_id()
        bpf.map_delete(fd, prefix_key("198.19.66.0/24"))
        eventually(lambda: holds("198.19.66.0/24"), 10, "the deleted entry restored at a resync")
        assert any("198.19.66.0/24" in r.get("message", "") and r.get("message", "").startswith("unit filter: map entry +")
                   for r in d.records()), d.records()

        drop(units, "filter.unit", filter_unit(veth_pair.if_a, "198.19.66.0/24", "198.19.77.0/24"))
        eventually(lambda: holds("198.19.77.0/24"), 10, "an edited unit's new entry written")
        assert d.prog_id() == prog, "entries are written with no relink"
    finally:
        os.close(fd)
