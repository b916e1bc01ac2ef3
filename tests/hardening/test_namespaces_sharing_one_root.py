"""Issue 11 #7: network namespaces sharing one bpffs root (ifindexes repeat across them) keep their
own chains and maps; hook pins of the layout before namespaced folders (`hooks/if<N>`) are adopted
by the namespace whose hook they hold."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from bpfunits.hooks import Hook
from bpfunits.sys import netns
from bpfunits.hooks.observe import observe
from tests.hardening.statecli import hooks, pinned_count, run, unit
from tests.traffic import frame, send_frames
from tests.unitfiles import write

pytestmark = pytest.mark.kernel


def _running(ns: str, ifindex: int, root) -> list[int]:
    with netns.inside(ns):
        return [p.prog_id for p in observe(ifindex, Hook.XDP, root).programs]


@pytest.mark.matrix
def test_namespaces_sharing_one_root_keep_their_chains_and_maps(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    assert veth_pair.ifindex_a == veth_pair.ifindex_b, "the same ifindex in both namespaces"
    units_a, units_b = tmp_path / "a", tmp_path / "b"
    write(units_a, "a.unit", unit("counter.bpf.o"))
    write(units_b, "b.unit", unit("counter.bpf.o"))
    code, doc = run(capsys, "apply", veth_pair.ns_a, units_a, bpffs_root.path)
    chain_a = hooks(doc)[(veth_pair.if_a, "xdp")]["prog_id"]
    assert code == 2
    code, doc = run(capsys, "apply", veth_pair.ns_b, units_b, bpffs_root.path)
    chain_b = hooks(doc)[(veth_pair.if_b, "xdp")]["prog_id"]
    assert code == 2 and hooks(doc)[(veth_pair.if_b, "xdp")]["action"] == "create"

    assert _running(veth_pair.ns_a, veth_pair.ifindex_a, bpffs_root) == [chain_a]
    assert _running(veth_pair.ns_b, veth_pair.ifindex_b, bpffs_root) == [chain_b]
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(4)])  # reaches A's XDP
    send_frames(veth_pair.ns_a, veth_pair.if_a, [frame(i) for i in range(6)])  # reaches B's XDP
    assert pinned_count(bpffs_root.unit_path("a") / "packets") == 4
    assert pinned_count(bpffs_root.unit_path("b") / "packets") == 6
    for ns, units, key in ((veth_pair.ns_a, units_a, veth_pair.if_a), (veth_pair.ns_b, units_b, veth_pair.if_b)):
        code, doc = run(capsys, "apply", ns, units, bpffs_root.path)
        assert code == 0 and hooks(doc)[(key, "xdp")]["outcome"] == "unchanged"

    # Each namespace removing its own units leaves the other's alone.
    (units_b / "b.unit").unlink()
    assert run(capsys, "apply", veth_pair.ns_b, units_b, bpffs_root.path)[0] == 2
    assert _running(veth_pair.ns_a, veth_pair.ifindex_a, bpffs_root) == [chain_a]
    assert not bpffs_root.unit_path("b").exists() and bpffs_root.unit_path("a").exists()


def test_namespaces_sharing_one_root_adopt_hook_pins_of_the_old_layout(tmp_path, capsys, veth_pair, bpffs_root,
                                                                     bpf_objects):
    units = tmp_path / "units"
    write(units, "a.unit", unit("counter.bpf.o"))
    code, doc = run(capsys, "apply", veth_pair.ns_a, units, bpffs_root.path)
    chain = hooks(doc)[(veth_pair.if_a, "xdp")]["prog_id"]
    with netns.inside(veth_pair.ns_a):
        namespaced = bpffs_root.hook_path(veth_pair.ifindex_a, Hook.XDP).parent
    legacy = bpffs_root.hooks_path / f"if{veth_pair.ifindex_a}"
    os.rename(namespaced, legacy)  # what a bpfunits before namespaced folders left behind
    os.rmdir(namespaced.parent)

    # The other namespace, where the same ifindex runs nothing of ours, neither adopts nor clears it.
    (tmp_path / "none").mkdir()
    assert run(capsys, "apply", veth_pair.ns_b, tmp_path / "none", bpffs_root.path)[0] == 0
    assert (legacy / "xdp" / "link").exists()
    assert _running(veth_pair.ns_a, veth_pair.ifindex_a, bpffs_root) == [chain]

    code, doc = run(capsys, "plan", veth_pair.ns_a, units, bpffs_root.path)
    assert code == 0 and hooks(doc)[(veth_pair.if_a, "xdp")]["action"] == "unchanged"
    assert legacy.exists(), "plan moves no pin"
    code, doc = run(capsys, "apply", veth_pair.ns_a, units, bpffs_root.path)
    assert code == 0 and hooks(doc)[(veth_pair.if_a, "xdp")]["prog_id"] == chain
    assert (namespaced / "xdp" / "link").exists() and not legacy.exists()


def test_pins_of_a_namespace_that_is_gone_are_removed(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    """Its chain's link lost its interface with the namespace; the hook folder and the unit's maps
    only it used were kept for ever."""
    units_a, units_b = tmp_path / "a", tmp_path / "b"
    write(units_a, "a.unit", unit("tc_actions.bpf.o", hook="tc-ingress"))
    write(units_b, "b.unit", unit("counter.bpf.o"))
    assert run(capsys, "apply", veth_pair.ns_b, units_b, bpffs_root.path)[0] == 2
    with netns.inside(veth_pair.ns_b):
        gone = bpffs_root.netns_path()
    assert (gone / f"if{veth_pair.ifindex_b}" / "xdp" / "link").exists() and bpffs_root.unit_path("b").exists()
    # Without its namespace, the peer in ns_a goes too: a new pair keeps ns_a's apply busy.
    subprocess.run(["ip", "netns", "del", veth_pair.ns_b], check=True)
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "add", veth_pair.if_a[:-1] + "n", "type", "veth", "peer", "name",
                    veth_pair.if_a[:-1] + "z"], check=True)

    def settled() -> bool:  # the namespace (and the old pair) is torn down in the background
        run(capsys, "apply", veth_pair.ns_a, units_a, bpffs_root.path)
        return not gone.exists() and not bpffs_root.unit_path("b").exists()

    deadline = time.monotonic() + 10
    while not settled():
        assert time.monotonic() < deadline, f"{gone} or unit b's maps still pinned"
        time.sleep(0.2)
    assert bpffs_root.unit_path("a").exists(), "the living namespace's unit keeps its maps"
