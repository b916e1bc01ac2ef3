"""A unit's maps persist across loads: every map that holds state is pinned in the unit's folder
when committed (apply does that once a chain using them runs), and reused by the next load."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.load import mappins
from bpfunits.sys import bpf
from bpfunits.load.load import load_object_program

pytestmark = pytest.mark.kernel
KEY0 = struct.pack("<I", 0)


def load(bpf_objects: Path, obj: str, folder: Path):
    return load_object_program(bpf_objects / obj, Hook.XDP, folder, persist_maps=True)


@pytest.mark.matrix
def test_plain_and_global_data_maps_survive_a_reload(bpf_objects, bpffs_root):
    folder = bpffs_root.unit_path("g")
    with load(bpf_objects, "globals.bpf.o", folder) as first:
        ids = {name: ref.id for name, ref in first.maps.items()}
        for _ in range(3):
            bpf.prog_test_run(first.fd, b"\0" * 64)
        assert not folder.exists(), "a load alone pins nothing"
        mappins.commit(bpffs_root, "g", first.maps.values())
    pinned = sorted(p.name for p in folder.iterdir())
    assert any("bss" in n for n in pinned) and any("data" in n for n in pinned)
    assert not any("rodata" in n for n in pinned), "read-only data comes from the object"
    with load(bpf_objects, "globals.bpf.o", folder) as second:
        for name, ref in second.maps.items():
            if "rodata" in name:
                assert ref.id != ids[name]
            else:
                assert ref.id == ids[name], f"{name} was not reused"


@pytest.mark.matrix
def test_counter_state_carries_over(bpf_objects, bpffs_root):
    folder = bpffs_root.unit_path("c")
    with load(bpf_objects, "counter.bpf.o", folder) as first:
        for _ in range(5):
            bpf.prog_test_run(first.fd, b"\0" * 64)
        mappins.commit(bpffs_root, "c", first.maps.values())
    with load(bpf_objects, "counter.bpf.o", folder) as second:
        bpf.prog_test_run(second.fd, b"\0" * 64)
        assert struct.unpack("<Q", bpf.map_lookup(second.maps["packets"].fd, KEY0, 8))[0] == 6


@pytest.mark.matrix
def test_a_pin_of_another_shape_is_replaced_at_commit_only(bpf_objects, bpffs_root):
    folder = bpffs_root.unit_dir("s")
    stale = bpf.map_create(bpf.MapType.HASH, 4, 8, 4, name="packets")
    try:
        bpf.obj_pin(stale, str(folder / "packets"))
        old_id = bpf.map_info(stale).id
    finally:
        os.close(stale)
    with load(bpf_objects, "counter.bpf.o", folder) as prog:
        assert prog.maps["packets"].id != old_id
        assert prog.maps["packets"].type == bpf.MapType.ARRAY
        (change,) = mappins.shape_changes(bpffs_root, "s", prog.maps.values())
        assert str(change) == "unit s: map packets type 1 -> 2, max_entries 4 -> 1: its entries will be reset"
        assert mappins.pinned(folder / "packets").id == old_id, "the load left the pin alone"
        mappins.commit(bpffs_root, "s", prog.maps.values())
        assert mappins.pinned(folder / "packets").id == prog.maps["packets"].id


@pytest.mark.matrix
def test_without_persistence_plain_maps_are_not_pinned(bpf_objects, bpffs_root):
    folder = bpffs_root.unit_path("n")
    with load_object_program(bpf_objects / "counter.bpf.o", Hook.XDP, folder):
        assert not folder.exists() or not any(folder.iterdir())
