"""Per-unit counters never reset while a unit stays on its hook: a relink (reorder, edit) carries
each unit's counts into the new chain; a unit that leaves and comes back starts from 0."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bpfunits.cli import main
from bpfunits.linker import counters as counters_module
from bpfunits.sys import bpf
from tests.traffic import frame, send_frames
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
BPF = Path(__file__).resolve().parents[2] / "bpf"


def unit(obj: str, extra: str = "") -> str:
    return f"[Unit]\n{extra}\n[Program]\nObject={BPF / obj}\n[Attach]\nHook=xdp\nInterfaces=bu*\n"


def run(capsys, command: str, pair, units: Path, root) -> dict:
    main([command, "--netns", pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(root.path), "--json"])
    return json.loads(capsys.readouterr().out)


def counts(capsys, pair, units, root) -> dict[str, tuple[int | None, dict]]:
    doc = run(capsys, "status", pair, units, root)
    xdp = next(h for h in doc["hooks"] if h["hook"] == "xdp")
    return {u["unit"]: (u["packets"], u["verdicts"]) for u in xdp["units"]}


def program(capsys, pair, units, root) -> int:
    doc = run(capsys, "status", pair, units, root)
    return next(h for h in doc["hooks"] if h["hook"] == "xdp")["program"]["id"]


def send(pair, n: int) -> None:
    send_frames(pair.ns_b, pair.if_b, [frame(i) for i in range(n)])


def test_counts_survive_reorder_and_edit_and_restart_from_zero_after_leaving(
        tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "10-count.unit", unit("counter.bpf.o"))
    write(units, "20-drop.unit", unit("dropper.bpf.o"))
    run(capsys, "apply", veth_pair, units, bpffs_root)
    send(veth_pair, 10)
    assert counts(capsys, veth_pair, units, bpffs_root) == {"10-count": (10, {"pass": 10}), "20-drop": (10, {"drop": 10})}

    # Reordered: the dropper first now sees every frame, the counter none; both keep what they had.
    write(units, "10-count.d/order.conf", "[Unit]\nAfter=20-drop\n")
    first = run(capsys, "apply", veth_pair, units, bpffs_root)["hooks"][0]
    assert first["action"] == "replace" and first["outcome"] == "applied"
    assert counts(capsys, veth_pair, units, bpffs_root) == {"20-drop": (10, {"drop": 10}), "10-count": (10, {"pass": 10})}
    send(veth_pair, 5)
    assert counts(capsys, veth_pair, units, bpffs_root) == {"20-drop": (15, {"drop": 15}), "10-count": (10, {"pass": 10})}

    # Carried again at the next relink (an edit of the counter: Define-free, a new description
    # changes nothing, so another unit joins), and a third unit starts from 0.
    write(units, "30-count.unit", unit("counter.bpf.o", extra="After=10-count"))
    run(capsys, "apply", veth_pair, units, bpffs_root)
    send(veth_pair, 3)
    assert counts(capsys, veth_pair, units, bpffs_root) == {
        "20-drop": (18, {"drop": 18}), "10-count": (10, {"pass": 10}), "30-count": (0, {})}

    # The dropper leaves the hook and comes back: it starts from 0; the others keep theirs.
    dropper = (units / "20-drop.unit").read_text()
    (units / "20-drop.unit").unlink()
    run(capsys, "apply", veth_pair, units, bpffs_root)
    send(veth_pair, 4)
    write(units, "20-drop.unit", dropper)
    run(capsys, "apply", veth_pair, units, bpffs_root)
    assert counts(capsys, veth_pair, units, bpffs_root) == {
        "20-drop": (0, {}), "10-count": (14, {"pass": 14}), "30-count": (4, {"pass": 4})}


def unreadable_old_counters(monkeypatch, old_id: int) -> None:
    """The old chain's counters fail to read, for real: their fd, once opened, is made another
    file's (/dev/null), whose lookups the kernel refuses (as it would a map gone)."""
    real = counters_module.open_counters

    def opened(prog_id: int):
        found = real(prog_id)
        if prog_id == old_id and found is not None:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, found.layout.map_fd)
            os.close(null)
        return found

    monkeypatch.setattr(counters_module, "open_counters", opened)


def refused_write(monkeypatch, which: int) -> None:
    """The kernel refuses the `which`-th write of carried counts (1: before the swap, 2: after
    it): the new chain's counter map is frozen (no more writes from user space) just before."""
    real = counters_module.write_base
    calls = []

    def write(layout, names, counts) -> None:
        calls.append(layout)
        if len(calls) == which:
            bpf.map_freeze(layout.map_fd)
        real(layout, names, counts)

    monkeypatch.setattr(counters_module, "write_base", write)


@pytest.mark.parametrize("failing, carried", [("read before", 0), ("write before", 0), ("write after", 10)])
def test_a_carry_that_fails_is_a_warning_and_the_swap_goes_on(
        tmp_path, capsys, veth_pair, bpffs_root, bpf_objects, monkeypatch, failing, carried):
    """Counters never block or misreport the datapath: when the counts cannot be carried over
    (before the swap: no swap happened and the hook failed; after it: the hook was reported
    failed with the old program, and the new units' maps were not pinned), the swap goes on,
    is reported applied with the new program, and says why the counts were not carried."""
    units = tmp_path / "units"
    write(units, "10-count.unit", unit("counter.bpf.o"))
    write(units, "20-drop.unit", unit("dropper.bpf.o"))
    run(capsys, "apply", veth_pair, units, bpffs_root)
    send(veth_pair, 10)
    old = program(capsys, veth_pair, units, bpffs_root)
    if failing == "read before":
        unreadable_old_counters(monkeypatch, old)
    else:
        refused_write(monkeypatch, 1 if failing == "write before" else 2)

    write(units, "30-count.unit", unit("counter.bpf.o", extra="After=20-drop"))
    doc = run(capsys, "apply", veth_pair, units, bpffs_root)
    monkeypatch.undo()
    (hook,) = doc["hooks"]
    assert (hook["outcome"], hook["errors"], doc["failed"]) == ("applied", [], False)
    when = "after" if failing == "write after" else "before"
    assert len(hook["warnings"]) == 1 and f"counters not carried over {when} the swap" in hook["warnings"][0]
    running = program(capsys, veth_pair, units, bpffs_root)
    assert hook["prog_id"] == running != old
    assert list(bpffs_root.unit_path("30-count").iterdir()), "the new unit's maps pinned by this apply"

    send(veth_pair, 3)
    assert counts(capsys, veth_pair, units, bpffs_root) == {
        "10-count": (carried + 3, {"pass": carried + 3}), "20-drop": (carried + 3, {"drop": carried + 3}),
        "30-count": (0, {})}
