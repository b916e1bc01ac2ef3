"""Issue 11 #9: SHA256= is checked on the bytes that load. The object is swapped for another right
after its digest is taken (the race an attacker wins by retrying); what loads is still the hashed one."""

from __future__ import annotations

import hashlib
import os
import shutil
from types import SimpleNamespace

import pytest

from bpfunits.hooks import Hook
from bpfunits.load import load

pytestmark = pytest.mark.kernel


def swap_after_hashing(monkeypatch, path, replacement) -> None:
    """Every digest load.py takes is followed at once by an atomic swap of `path` to `replacement`."""

    def sha256(data=b""):
        digest = hashlib.sha256(data)
        shutil.copyfile(replacement, f"{path}.new")
        os.replace(f"{path}.new", path)
        return digest

    monkeypatch.setattr(load, "hashlib", SimpleNamespace(sha256=sha256))


def test_sha256_bypass_swapped_object_loads_the_hashed_bytes(tmp_path, monkeypatch, bpf_objects, bpffs_root):
    counter, dropper = bpf_objects / "counter.bpf.o", bpf_objects / "dropper.bpf.o"
    obj = tmp_path / "prog.bpf.o"
    shutil.copyfile(counter, obj)
    digest = hashlib.sha256(counter.read_bytes()).hexdigest()
    swap_after_hashing(monkeypatch, obj, dropper)

    with load.load_object_program(obj, Hook.XDP, bpffs_root.unit_path("u"), sha256=digest) as prog:
        assert obj.read_bytes() == dropper.read_bytes(), "the swap happened before the load"
        assert prog.name == "count_packets" and prog.sha256 == digest


def test_sha256_bypass_swapped_source_compiles_the_hashed_bytes(tmp_path, monkeypatch, bpffs_root):
    good = "int good(struct xdp_md *ctx) { return XDP_PASS; }\n"
    evil = tmp_path / "evil.c"
    evil.write_text("int evil(struct xdp_md *ctx) { return XDP_DROP; }\n")
    source = tmp_path / "prog.c"
    source.write_text(good)
    swap_after_hashing(monkeypatch, source, evil)

    from bpfunits.load.bcc import load_source_program

    digest = hashlib.sha256(good.encode()).hexdigest()
    with load_source_program(source, Hook.XDP, sha256=digest, pin_root=bpffs_root.unit_path("u")) as prog:
        assert prog.name == "good" and prog.sha256 == digest


def test_objects_opened_from_memory_keep_the_map_names_of_their_file(bpf_objects, bpffs_root):
    # libbpf names .data/.bss/.rodata maps after the object, and pins go by map name: opening the
    # bytes must name the object as opening the file did, or every such pin would be orphaned.
    with load.load_object_program(bpf_objects / "globals.bpf.o", Hook.XDP, bpffs_root.unit_path("g")) as prog:
        assert {n for n in prog.maps if "." in n} == {"globals.bss", "globals.data", "globals.rodata"}
