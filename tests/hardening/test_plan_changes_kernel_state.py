"""Issue 11 #6: plan and status change nothing (no folder, no pin); when a map changes shape, plan
says so and leaves the running chain's pin alone, and apply replaces the pin only once the new
chain runs, so writes through the pin always reach the datapath."""

from __future__ import annotations

import os

import pytest

from bpfunits.sys import bpf
from tests.hardening.statecli import hooks, pinned_count, pinned_map, run
from tests.traffic import frame, send_frames
from tests.unitfiles import write

pytestmark = pytest.mark.kernel

# A rate limiter's port list, as in the issue: its size comes from Define=.
SOURCE = """\
#include <uapi/linux/bpf.h>
BPF_ARRAY(rl_ports_map, u64, ENTRIES);
int rl(struct xdp_md *ctx)
{
	rl_ports_map.increment(0);
	return XDP_PASS;
}
"""


def rl_unit(tmp_path, entries: int, extra: str = "") -> str:
    return (f"[Unit]\n{extra}\n[Program]\nSource={tmp_path / 'rl.c'}\nDefine=ENTRIES={entries}\n"
            "[Attach]\nHook=xdp\nInterfaces=bu*\n")


def test_plan_changes_kernel_state_not_even_a_folder(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    write(tmp_path, "rl.c", SOURCE)
    write(tmp_path / "units", "rl.unit", rl_unit(tmp_path, 64))
    fresh = bpffs_root.path / "fresh"
    for command in ("plan", "status"):
        run(capsys, command, veth_pair.ns_a, tmp_path / "units", fresh)
        assert not fresh.exists(), f"{command} created the state root"


def test_plan_changes_kernel_state_map_shape_change_keeps_the_running_pin(
    tmp_path, capsys, veth_pair, bpffs_root, bpf_objects
):
    units, root = tmp_path / "units", bpffs_root.path
    write(tmp_path, "rl.c", SOURCE)
    write(units, "rl.unit", rl_unit(tmp_path, 64))
    assert run(capsys, "apply", veth_pair.ns_a, units, root)[0] == 2
    pin = bpffs_root.unit_path("rl") / "rl_ports_map"
    running = pinned_map(pin)

    # A new version of the unit (its digest changes) with a smaller map.
    write(tmp_path, "rl.c", "// v2\n" + SOURCE)
    write(units, "rl.unit", rl_unit(tmp_path, 60))
    code, doc = run(capsys, "plan", veth_pair.ns_a, units, root)
    xdp = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert code == 2 and xdp["action"] == "replace"
    assert "unit rl: map rl_ports_map max_entries 64 -> 60: its entries will be reset" in xdp["reasons"]
    assert pinned_map(pin).id == running.id, "plan left the running chain's map pinned"

    # A hook that cannot take the new chain keeps its map pinned too.
    write(units, "bad.unit", f"[Unit]\nAfter=rl\n[Program]\nObject={bpf_objects / 'invalid.bpf.o'}\n"
                             "[Attach]\nHook=xdp\nInterfaces=bu*\n")
    code, doc = run(capsys, "apply", veth_pair.ns_a, units, root)
    assert code == 1 and hooks(doc)[(veth_pair.if_a, "xdp")]["outcome"] == "blocked"
    assert pinned_map(pin).id == running.id

    (units / "bad.unit").unlink()
    code, doc = run(capsys, "apply", veth_pair.ns_a, units, root)
    xdp = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert code == 2 and xdp["outcome"] == "applied"
    now = pinned_map(pin)
    assert now.max_entries == 60 and now.id in _map_ids(xdp["prog_id"]), "the pin is the map the chain uses"
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(3)])
    assert pinned_count(pin) == 3, "what the chain counts shows through the pin"


def _map_ids(prog_id: int) -> tuple[int, ...]:
    fd = bpf.prog_get_fd_by_id(prog_id)
    try:
        return bpf.prog_info(fd).map_ids
    finally:
        os.close(fd)
