"""Loaded programs kept across reconciles (reconcile/progcache.py), on the real kernel: what
determines a program decides whether it loads again, and what a reconcile no longer asks for is
released."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bpfunits.state import pins
from bpfunits.sys import bpf
from bpfunits.reconcile.engine import Result
from bpfunits.reconcile.progcache import ProgramCache
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
BPF = Path(__file__).resolve().parents[2] / "bpf"
XDP_PASS = 2


def unit(obj: Path, extra: str = "") -> str:
    return f"[Unit]\n{extra}\n[Program]\nObject={obj}\n[Attach]\nHook=xdp\nInterfaces=bu*\n"


def programs_loaded_since(marker: int) -> int:
    """Programs loaded in the kernel since the marker program was (ids are handed out in
    order), by loading another marker."""
    return next_prog_id() - marker - 1


def next_prog_id() -> int:
    fd = bpf.prog_load(bpf.ProgType.XDP, bytes.fromhex("b700000002000000" "9500000000000000"))
    try:
        return bpf.prog_info(fd).id
    finally:
        os.close(fd)


@pytest.fixture
def setup(reconciler) -> tuple[Path, ProgramCache, Callable[[], Result]]:
    def run() -> Result:
        result = reconciler.apply()
        assert not result.failed, [h.errors for h in result.hooks]
        return result

    return reconciler.units, reconciler.node.programs, run


def ids(cache: ProgramCache) -> dict[str, int]:
    return {name: cache.program(name).id for name in cache.units()}


def test_a_relink_loads_only_the_chain(setup):
    units, cache, run = setup
    for name in ("a", "b", "c"):
        write(units, f"{name}.unit", unit(BPF / "counter.bpf.o"))
    run()
    before = ids(cache)
    write(units, "a.unit", unit(BPF / "counter.bpf.o", "After=c"))
    marker = next_prog_id()
    result = run()
    assert [h.outcome.value for h in result.hooks] == ["applied"]
    # No unit loaded, verified or compiled again (nor verified for its stack depth): one program,
    # the new chain.
    assert programs_loaded_since(marker) == 1
    assert ids(cache) == before
    marker = next_prog_id()
    run()
    assert programs_loaded_since(marker) == 0, "a resync with nothing to do loads nothing"


def test_a_changed_object_loads_again_and_the_old_program_is_released(setup, tmp_path):
    units, cache, run = setup
    obj = tmp_path / "prog.bpf.o"
    shutil.copy(BPF / "counter.bpf.o", obj)
    write(units, "a.unit", unit(obj))
    write(units, "b.unit", unit(BPF / "counter.bpf.o"))
    run()
    old = ids(cache)
    shutil.copy(BPF / "dropper.bpf.o", obj)
    run()
    new = ids(cache)
    assert new["a"] != old["a"] and new["b"] == old["b"]
    assert old["a"] not in bpf.prog_ids(), "the old program's fds were closed"


def test_a_replaced_pinned_map_loads_again(setup, bpffs_root):
    units, cache, run = setup
    write(units, "a.unit", unit(BPF / "counter.bpf.o"))
    run()
    old = cache.program("a")
    shape = bpf.map_info(old.maps["packets"].fd)
    other = bpf.map_create(shape.type, shape.key_size, shape.value_size, shape.max_entries, name="packets")
    try:
        pins.pin(other, bpffs_root.unit_path("a") / "packets")  # another bpfunits replaced it
        other_id = bpf.map_info(other).id
    finally:
        os.close(other)
    old_id = old.id
    run()
    again = cache.program("a")
    assert again.id != old_id
    assert again.maps["packets"].id == other_id, "the new load binds the map pinned now"


def test_a_unit_that_goes_is_released(setup):
    units, cache, run = setup
    write(units, "a.unit", unit(BPF / "counter.bpf.o"))
    write(units, "b.unit", unit(BPF / "dropper.bpf.o"))
    run()
    gone = ids(cache)["b"]
    (units / "b.unit").unlink()
    run()
    assert cache.units() == ("a",)
    assert gone not in bpf.prog_ids()
