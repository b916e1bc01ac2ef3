"""Issue 11 #5, the state-root and kernel half: a pinned object where a pin folder belongs, and an
interface that vanishes while the hooks are read, are each an error of their unit or hook only; the
rest of the reconcile proceeds."""

from __future__ import annotations

import os

import pytest

from bpfunits.hooks import Hook
from bpfunits.sys import bpf, netns
from bpfunits.hooks.observe import Observer
from bpfunits.order.graph import HookKey
from bpfunits.reconcile import observed
from tests.hardening.statecli import hooks, run, unit
from tests.unitfiles import write

pytestmark = pytest.mark.kernel


def _pin_a_map(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = bpf.map_create(bpf.MapType.ARRAY, 4, 8, 1)
    try:
        bpf.obj_pin(fd, str(path))
    finally:
        os.close(fd)


def test_one_bad_input_pin_where_a_unit_folder_belongs(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "x.unit", unit("counter.bpf.o"))
    write(units, "t.unit", unit("tc_actions.bpf.o", hook="tc-ingress"))
    _pin_a_map(bpffs_root.unit_path("x"))
    code, doc = run(capsys, "apply", veth_pair.ns_a, units, bpffs_root.path)
    got = hooks(doc)
    assert code == 1
    xdp = got[(veth_pair.if_a, "xdp")]
    assert xdp["outcome"] == "blocked" and "unit x:" in xdp["reasons"][0] and "units/x" in xdp["reasons"][0]
    assert got[(veth_pair.if_a, "tc-ingress")]["outcome"] == "applied"


def test_one_bad_input_pin_where_a_hook_folder_belongs(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "x.unit", unit("counter.bpf.o"))
    write(units, "t.unit", unit("tc_actions.bpf.o", hook="tc-ingress"))
    with netns.inside(veth_pair.ns_a):
        _pin_a_map(bpffs_root.hook_path(veth_pair.ifindex_a, Hook.XDP))
    code, doc = run(capsys, "apply", veth_pair.ns_a, units, bpffs_root.path)
    got = hooks(doc)
    assert code == 1
    xdp = got[(veth_pair.if_a, "xdp")]
    assert xdp["outcome"] == "blocked" and "Not a directory" in xdp["reasons"][0]
    assert got[(veth_pair.if_a, "tc-ingress")]["outcome"] == "applied"


def test_one_bad_input_interface_vanishes_during_observation(veth_pair, bpffs_root):
    # Listed, then gone before its hooks are read: what a veth deleted meanwhile looks like.
    with netns.inside(veth_pair.ns_a):
        states = observed.read_all({"gone0": 999_999, veth_pair.if_a: veth_pair.ifindex_a}, Observer(bpffs_root, whole_namespace=True))
    gone = [s for k, s in states.items() if k.interface == "gone0"]
    assert len(gone) == 3 and all("No such device" in s.observed.errors[0] for s in gone)
    assert all(k.interface == "gone0" for k in states), "the live interface reads fine (it runs nothing)"
    assert HookKey("gone0", Hook.XDP) in states
