"""A program that carries a frozen, program-read-only map named like a chain's manifest, holding
something else (any root process can make one; another bpfunits version writes another format),
is not bpfunits' chain: reading it gives no manifest, and the hook it runs on is observed as
running a foreign program."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import pytest

from bpfunits.hooks import Hook
from bpfunits.hooks.observe import Observer
from bpfunits.linker.manifest import MAP_NAME, read_manifest
from bpfunits.sys import bpf

pytestmark = pytest.mark.kernel

RETURN_PASS = struct.pack("<BBhi", 0xB7, 0, 0, 2) + struct.pack("<BBhi", 0x95, 0, 0, 0)


@pytest.fixture(params=[b"{not json", b'{"format": 99, "components": []}', b"[" * 2000,
                        b'{"format": 1, "version": "1", "hook": "xdp", "components": [{"unit": []}]}'])
def hostile_program(request) -> Iterator[int]:
    value = request.param
    map_fd = bpf.map_create(bpf.MapType.ARRAY, 4, len(value), 1, name=MAP_NAME, flags=bpf.BPF_F_RDONLY_PROG)
    try:
        bpf.map_update(map_fd, bytes(4), value)
        bpf.map_freeze(map_fd)
        ld_map = struct.pack("<BBhi", 0x18, 0x10 | 1, 0, map_fd) + struct.pack("<BBhi", 0, 0, 0, 0)
        prog = bpf.prog_load(bpf.ProgType.XDP, ld_map + RETURN_PASS, name="hostile")
        try:
            yield prog
        finally:
            os.close(prog)
    finally:
        os.close(map_fd)


def test_a_hostile_manifest_reads_as_none(hostile_program):
    assert read_manifest(bpf.prog_info(hostile_program).id) is None


def test_a_program_with_a_hostile_manifest_is_foreign(hostile_program, veth_pair, bpffs_root):
    with veth_pair.inside_a():
        link = bpf.link_create(hostile_program, veth_pair.ifindex_a, bpf.AttachType.XDP)
        try:
            seen = Observer(bpffs_root, whole_namespace=True).observe(veth_pair.ifindex_a, Hook.XDP)
        finally:
            os.close(link)
    assert [(p.name, p.ours) for p in seen.programs] == [("hostile", False)]
