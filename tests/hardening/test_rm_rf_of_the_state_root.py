"""Issue 11 #15: `rm -rf` of the state root while the daemon runs. The pins were the only
references to the chains' links, so every chain was detached at once. The daemon holds its own
descriptor on each link: nothing is detached, no packet goes unprocessed, and the daemon pins
the links and its units' maps (with their state) again at its next resync."""

from __future__ import annotations

import shutil

import pytest

from bpfunits.hooks import Hook
from bpfunits.sys import netns
from bpfunits.hooks.observe import Backend, observe
from tests.fixtures.features import tcx_param
from tests.hardening.statecli import pinned_count
from tests.kernel.test_daemon import daemon, drop, eventually, unit_text  # noqa: F401 (fixture)
from tests.traffic import frame, send_frames

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("tc_backend", [tcx_param("tcx"), "cls_bpf"])
def test_rm_rf_of_the_state_root_detaches_nothing_and_the_pins_come_back(
    daemon, veth_pair, bpffs_root, tc_backend  # noqa: F811 (the fixture imported above)
):
    d = daemon(f"tc_backend: {tc_backend}\n")
    drop(d.units, "a.unit", unit_text("counter.bpf.o"))
    drop(d.units, "t.unit", unit_text("tc_actions.bpf.o", hook="tc-ingress"))
    d.notify.wait_for(lambda line: line.startswith("STATUS=2 hooks, 0"), 10)
    with netns.inside(veth_pair.ns_a):
        xdp_pin = bpffs_root.hook_path(veth_pair.ifindex_a, Hook.XDP) / "link"
        tc_pin = bpffs_root.hook_path(veth_pair.ifindex_a, Hook.TC_INGRESS)
    counted = bpffs_root.unit_path("a") / "packets"
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(10)])
    assert xdp_pin.exists() and pinned_count(counted) == 10

    def ours(hook: Hook) -> list:
        with netns.inside(veth_pair.ns_a):
            return [(p.prog_id, p.link_id, p.backend) for p in observe(veth_pair.ifindex_a, hook, bpffs_root).programs
                    if p.ours]

    running = (ours(Hook.XDP), ours(Hook.TC_INGRESS))
    assert running[0][0][2] is Backend.XDP_LINK and len(running[1]) == 1
    shutil.rmtree(bpffs_root.path)

    assert not xdp_pin.exists()
    assert (ours(Hook.XDP), ours(Hook.TC_INGRESS)) == running, "nothing detached"
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(5)])
    eventually(lambda: xdp_pin.exists() and tc_pin.exists() and counted.exists(), 5, "pinned again at the resync")
    assert pinned_count(counted) == 15, "the unit's map, with its state, is the one pinned again"
    assert (ours(Hook.XDP), ours(Hook.TC_INGRESS)) == running, "nothing swapped"
