"""Issue 11 #4: a unit that runs but whose file has become invalid (`Hook=xpd`) keeps every hook it
runs on exactly as it is, and its maps, until the file is fixed or deleted; plan and status say so."""

from __future__ import annotations

import pytest

from bpfunits.sys import netns
from bpfunits.hooks.observe import observe
from bpfunits.hooks import Hook
from tests.hardening.statecli import hooks, pinned_count, run, unit
from tests.traffic import frame, send_frames
from tests.unitfiles import write

pytestmark = pytest.mark.kernel


@pytest.mark.matrix
def test_typo_drops_running_unit_keeps_its_hooks_and_maps(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units, root = tmp_path / "units", bpffs_root.path
    write(units, "a.unit", unit("counter.bpf.o"))
    write(units, "b.unit", unit("counter.bpf.o", extra="After=a"))
    code, doc = run(capsys, "apply", veth_pair.ns_a, units, root)
    key = (veth_pair.if_a, "xdp")
    applied = hooks(doc)[key]["prog_id"]
    assert code == 2 and applied
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(10)])
    counted = bpffs_root.unit_path("a") / "packets"
    assert pinned_count(counted) == 10

    write(units, "a.unit", unit("counter.bpf.o").replace("Hook=xdp", "Hook=xpd"))
    for command in ("plan", "apply"):
        code, doc = run(capsys, command, veth_pair.ns_a, units, root)
        xdp = hooks(doc)[key]
        assert code == 1 and xdp["action"] == "blocked" and xdp["prog_id"] == applied
        assert "unit a is running here but its files have errors; the hook keeps its chain" in xdp["reasons"][0]
        assert [c["unit"] for c in xdp["running"]] == ["a", "b"]
    with netns.inside(veth_pair.ns_a):
        assert [p.prog_id for p in observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs] == [applied]
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(5)])
    assert pinned_count(counted) == 15, "the unit still runs, with the state it had"

    code, doc = run(capsys, "status", veth_pair.ns_a, units, root)
    rows = {u["unit"]: u for h in doc["hooks"] if h["hook"] == "xdp" for u in h["units"]}
    assert rows["a"]["state"] == "failed" and rows["a"]["packets"] == 15 and "xpd" in rows["a"]["error"]
    assert rows["b"]["state"] == "active"

    write(units, "a.unit", unit("counter.bpf.o"))
    code, doc = run(capsys, "apply", veth_pair.ns_a, units, root)
    assert code == 0 and hooks(doc)[key]["outcome"] == "unchanged" and hooks(doc)[key]["prog_id"] == applied
    assert pinned_count(counted) == 15
