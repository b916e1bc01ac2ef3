"""tc attachment through a direct-action cls_bpf filter on clsact, on a veth pair between namespaces."""

from __future__ import annotations

import subprocess

import pytest

from bpfunits.hooks import Hook
from bpfunits.hooks import attach, clsbpf
from bpfunits.hooks.attach import AttachError, AttachOptions
from bpfunits.hooks.clsbpf import Slot
from bpfunits.hooks.observe import Backend, observe
from bpfunits.hooks.probe import TcBackend
from tests.fixtures.counters import count_of_prog
from tests.traffic import through_hook

pytestmark = pytest.mark.kernel

CLS = AttachOptions(tc_backend=TcBackend.CLS_BPF)


def tc_add_foreign(pair, bpf_objects, *where: str) -> None:
    """Another tool adds a cls_bpf filter on A's ingress with tc (the clsact it needs too)."""
    subprocess.run(["tc", "-n", pair.ns_a, "qdisc", "add", "dev", pair.if_a, "clsact"], capture_output=True)
    subprocess.run(
        ["tc", "-n", pair.ns_a, "filter", "add", "dev", pair.if_a, "ingress", *where,
         "bpf", "da", "obj", str(bpf_objects / "attach_foreign.bpf.o"), "sec", "tc"],
        check=True, capture_output=True,
    )


@pytest.mark.parametrize("hook", [Hook.TC_INGRESS, Hook.TC_EGRESS])
@pytest.mark.matrix
def test_attach_observe_replace_in_place_detach(veth_pair, bpffs_root, counters, hook):
    a, b = counters(hook, "a"), counters(hook, "b")
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        got = attach.attach(idx, hook, a.fd, bpffs_root, CLS)
        assert (got.prog_id, got.name, got.tag, got.link_id, got.backend, got.mode, got.ours) == (
            a.id, a.name, a.program.tag, None, Backend.CLS_BPF, "prio 1 handle 0xb0f", True
        )
        assert observe(idx, hook, bpffs_root).programs == (got,)
        (filt,) = clsbpf.filters(idx, hook)
        assert (filt.prio, filt.handle, filt.direct_action) == (1, 0xB0F, True)

    assert through_hook(veth_pair, hook, 30) == 30
    assert (a.count(), b.count()) == (30, 0)

    with veth_pair.inside_a():
        swapped = attach.replace(idx, hook, b.fd, bpffs_root, old_prog_fd=a.fd)
        assert (swapped.prog_id, swapped.mode, swapped.ours) == (b.id, "prio 1 handle 0xb0f", True)
        assert [(f.prio, f.handle, f.prog_id) for f in clsbpf.filters(idx, hook)] == [(1, 0xB0F, b.id)]
        with pytest.raises(AttachError, match="another program than the one to replace"):
            attach.replace(idx, hook, a.fd, bpffs_root, old_prog_fd=a.fd)

    assert through_hook(veth_pair, hook, 20) == 20
    assert (a.count(), b.count()) == (30, 20)

    with veth_pair.inside_a():
        assert attach.detach(idx, hook, bpffs_root)
        assert observe(idx, hook, bpffs_root).programs == ()
        assert not bpffs_root.hook_path(idx, hook).parent.exists()  # folders pruned


def test_configured_slot(veth_pair, bpffs_root, counters):
    a, b = counters(Hook.TC_INGRESS, "a"), counters(Hook.TC_INGRESS, "b")
    options = AttachOptions(tc_backend=TcBackend.CLS_BPF, slot=Slot(prio=7, handle=0x42))
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        assert attach.attach(idx, Hook.TC_INGRESS, a.fd, bpffs_root, options).mode == "prio 7 handle 0x42"
        # replace finds our slot from the kernel, without being told again
        assert attach.replace(idx, Hook.TC_INGRESS, b.fd, bpffs_root).mode == "prio 7 handle 0x42"


def test_foreign_filter_elsewhere_is_left_alone(veth_pair, bpffs_root, counters, bpf_objects):
    tc_add_foreign(veth_pair, bpf_objects)
    a = counters(Hook.TC_INGRESS)
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        (foreign,) = observe(idx, Hook.TC_INGRESS, bpffs_root).programs
        assert (foreign.name, foreign.backend, foreign.ours) == ("foreign_tc", Backend.CLS_BPF, False)
        attach.attach(idx, Hook.TC_INGRESS, a.fd, bpffs_root, CLS)
        seen = observe(idx, Hook.TC_INGRESS, bpffs_root).programs
        assert [(p.prog_id, p.ours) for p in seen] == [(a.id, True), (foreign.prog_id, False)]  # prio 1 first
        assert seen[1] == foreign

    assert through_hook(veth_pair, Hook.TC_INGRESS, 15) == 15
    assert (a.count(), count_of_prog(foreign.prog_id)) == (15, 15)

    with veth_pair.inside_a():
        attach.detach(idx, Hook.TC_INGRESS, bpffs_root)
        assert observe(idx, Hook.TC_INGRESS, bpffs_root).programs == (foreign,)


@pytest.mark.matrix
def test_foreign_filter_in_our_slot_needs_takeover(veth_pair, bpffs_root, counters, bpf_objects):
    tc_add_foreign(veth_pair, bpf_objects, "prio", "1", "handle", "0xb0f")
    a = counters(Hook.TC_INGRESS)
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        (foreign,) = observe(idx, Hook.TC_INGRESS, bpffs_root).programs
        refusal = r"runs program id \d+ \(cls_bpf filter 'attach_foreign.bpf.o:\[tc\]' in bpfunits' slot\) that"
        with pytest.raises(AttachError, match=refusal):
            attach.attach(idx, Hook.TC_INGRESS, a.fd, bpffs_root, CLS)
        assert observe(idx, Hook.TC_INGRESS, bpffs_root).programs == (foreign,)
        got = attach.attach(idx, Hook.TC_INGRESS, a.fd, bpffs_root, CLS, takeover=True)
        assert (got.prog_id, got.mode, got.ours) == (a.id, "prio 1 handle 0xb0f", True)
        assert observe(idx, Hook.TC_INGRESS, bpffs_root).programs == (got,)


def test_detach_after_someone_else_removed_ours_only_unpins(veth_pair, bpffs_root, counters):
    a = counters(Hook.TC_INGRESS)
    with veth_pair.inside_a():
        attach.attach(veth_pair.ifindex_a, Hook.TC_INGRESS, a.fd, bpffs_root, CLS)
    subprocess.run(
        ["tc", "-n", veth_pair.ns_a, "filter", "del", "dev", veth_pair.if_a, "ingress", "prio", "1"], check=True
    )
    with veth_pair.inside_a():
        with pytest.raises(AttachError, match="cls_bpf filter is gone"):
            attach.replace(veth_pair.ifindex_a, Hook.TC_INGRESS, a.fd, bpffs_root)
        assert attach.detach(veth_pair.ifindex_a, Hook.TC_INGRESS, bpffs_root) is True
        assert attach.held_by(veth_pair.ifindex_a, Hook.TC_INGRESS, bpffs_root) is None
