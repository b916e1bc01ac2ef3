"""Observing hooks: every program in the kernel's run order, each marked ours or foreign."""

from __future__ import annotations

import os

import pytest

from bpfunits.hooks import Hook
from bpfunits.hooks import attach, probe, tcx
from bpfunits.sys import bpf
from bpfunits.hooks.attach import AttachOptions
from bpfunits.hooks import observe as observing
from bpfunits.hooks.observe import Backend, observe
from bpfunits.hooks.probe import TcBackend, XdpBackend
from tests.kernel.test_attach_clsbpf import tc_add_foreign
from tests.traffic import through_hook

pytestmark = pytest.mark.kernel


@pytest.fixture
def other_root(make_bpffs_root):
    return make_bpffs_root()


@pytest.mark.matrix
def test_empty_hooks(veth_pair, bpffs_root):
    with veth_pair.inside_a():
        for hook in Hook:
            seen = observe(veth_pair.ifindex_a, hook, bpffs_root)
            assert (seen.ifindex, seen.hook, seen.programs) == (veth_pair.ifindex_a, hook, ())
            assert (seen.revision is None) == (hook is Hook.XDP)


@pytest.mark.needs(probe.TCX)
@pytest.mark.matrix
def test_tc_hook_lists_tcx_links_then_cls_bpf_filters(veth_pair, bpffs_root, counters, bpf_objects):
    ours, theirs = counters(Hook.TC_INGRESS, "a"), counters(Hook.TC_INGRESS, "b")
    tc_add_foreign(veth_pair, bpf_objects)
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        foreign_link = bpf.link_create(theirs.fd, idx, bpf.AttachType.TCX_INGRESS)
        try:
            attach.attach(idx, Hook.TC_INGRESS, ours.fd, bpffs_root, AttachOptions(tc_backend=TcBackend.TCX))
            seen = observe(idx, Hook.TC_INGRESS, bpffs_root)
            assert [(p.name, p.backend, p.ours) for p in seen.programs] == [
                ("tc_count_a", Backend.TCX, True),
                ("tc_count_b", Backend.TCX, False),
                ("foreign_tc", Backend.CLS_BPF, False),
            ]
            assert seen.programs[1].link_id == bpf.link_info(foreign_link).id
            assert seen.programs[2].mode == "prio 49152 handle 0x1"
            assert seen.revision == tcx.query(idx, Hook.TC_INGRESS).revision
            assert [p.name for p in seen.ours] == ["tc_count_a"]
            assert [p.name for p in seen.foreign] == ["tc_count_b", "foreign_tc"]
            # The order is the run order: every program returns "next", so each sees every frame.
            assert through_hook(veth_pair, Hook.TC_INGRESS, 8) == 8
            assert (ours.count(), theirs.count()) == (8, 8)
        finally:
            os.close(foreign_link)
        assert observe(idx, Hook.TC_INGRESS, bpffs_root).revision == seen.revision + 1


@pytest.mark.parametrize("hook", list(Hook))
def test_ours_means_pinned_under_this_root(veth_pair, bpffs_root, other_root, counters, hook):
    a = counters(hook)
    with veth_pair.inside_a():
        attach.attach(veth_pair.ifindex_a, hook, a.fd, bpffs_root)
        (mine,) = observe(veth_pair.ifindex_a, hook, bpffs_root).programs
        (same,) = observe(veth_pair.ifindex_a, hook, other_root).programs
    assert mine.ours and not same.ours
    assert (same.prog_id, same.link_id, same.backend) == (mine.prog_id, mine.link_id, mine.backend)


@pytest.mark.needs(probe.XDP_LINK)
def test_an_xdp_link_updated_between_its_pin_and_the_interface_is_read_is_found_by_its_pin(
        veth_pair, bpffs_root, counters, monkeypatch):
    first, second = counters(Hook.XDP, "a"), counters(Hook.XDP, "b")
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        attach.attach(idx, Hook.XDP, first.fd, bpffs_root, AttachOptions(xdp_backend=XdpBackend.LINK))
        read_interface = observing.rtnl.interface
        swaps = [second.fd]

        def swapped_meanwhile(ifindex):
            # Our own daemon's swap, landing between the read of the pins and of the interface.
            monkeypatch.setattr(observing.rtnl, "interface", read_interface)
            attach.replace(idx, Hook.XDP, swaps.pop(), bpffs_root)
            return read_interface(ifindex)

        def every_link():
            raise AssertionError("every link listed, to find the one pinned")

        monkeypatch.setattr(observing.rtnl, "interface", swapped_meanwhile)
        monkeypatch.setattr(observing.bpf, "link_ids", every_link)
        seen = observe(idx, Hook.XDP, bpffs_root)
        assert not swaps
    assert [(p.name, p.backend, p.ours) for p in seen.programs] == [("xdp_count_b", Backend.XDP_LINK, True)]
