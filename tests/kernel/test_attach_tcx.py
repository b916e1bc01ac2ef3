"""tc attachment through tcx links, on a veth pair between namespaces."""

from __future__ import annotations

import errno
import os

import pytest

from bpfunits.hooks import Hook
from bpfunits.hooks import attach, probe, tcx
from bpfunits.sys import bpf
from bpfunits.hooks.attach import AttachError, AttachOptions
from bpfunits.hooks.observe import Backend, observe
from bpfunits.hooks.probe import TcBackend
from bpfunits.hooks.tcx import TcPosition
from tests.fixtures.counters import count_of_prog
from tests.traffic import through_hook

pytestmark = [pytest.mark.kernel, pytest.mark.needs(probe.TCX)]

TCX = AttachOptions(tc_backend=TcBackend.TCX)


@pytest.mark.parametrize("hook", [Hook.TC_INGRESS, Hook.TC_EGRESS])
@pytest.mark.matrix
def test_attach_observe_replace_detach(veth_pair, bpffs_root, counters, hook):
    a, b = counters(hook, "a"), counters(hook, "b")
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        got = attach.attach(idx, hook, a.fd, bpffs_root, TCX)
        assert (got.prog_id, got.name, got.backend, got.mode, got.ours) == (a.id, a.name, Backend.TCX, None, True)
        seen = observe(idx, hook, bpffs_root)
        assert seen.programs == (got,)
        assert seen.revision == tcx.query(idx, hook).revision >= 1

    assert through_hook(veth_pair, hook, 40) == 40
    assert (a.count(), b.count()) == (40, 0)

    with veth_pair.inside_a():
        swapped = attach.replace(idx, hook, b.fd, bpffs_root, old_prog_fd=a.fd)
        assert (swapped.prog_id, swapped.link_id) == (b.id, got.link_id)
        assert observe(idx, hook, bpffs_root).revision == seen.revision + 1
        with pytest.raises(AttachError, match="BPF_LINK_UPDATE"):
            attach.replace(idx, hook, a.fd, bpffs_root, old_prog_fd=a.fd)

    assert through_hook(veth_pair, hook, 25) == 25
    assert (a.count(), b.count()) == (40, 25)

    with veth_pair.inside_a():
        assert attach.detach(idx, hook, bpffs_root)
        assert observe(idx, hook, bpffs_root).programs == ()
        assert not bpffs_root.hook_path(idx, hook).parent.exists()  # folders pruned

    assert through_hook(veth_pair, hook, 5) == 5
    assert (a.count(), b.count()) == (40, 25)


@pytest.mark.parametrize("placement", [TcPosition.FIRST, TcPosition.LAST])
@pytest.mark.matrix
def test_placement_relative_to_a_foreign_program(veth_pair, bpffs_root, counters, placement):
    ours, theirs = counters(Hook.TC_INGRESS, "a"), counters(Hook.TC_INGRESS, "b")
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        # Another tool's tcx link, held by its fd only (nothing under our root).
        foreign_link = bpf.link_create(theirs.fd, idx, bpf.AttachType.TCX_INGRESS)
        try:
            options = AttachOptions(tc_backend=TcBackend.TCX, tc_position=placement)
            attach.attach(idx, Hook.TC_INGRESS, ours.fd, bpffs_root, options)
            seen = observe(idx, Hook.TC_INGRESS, bpffs_root)
            expected = [ours.id, theirs.id] if placement is TcPosition.FIRST else [theirs.id, ours.id]
            assert [p.prog_id for p in seen.programs] == expected
            assert [p.ours for p in seen.programs] == [pid == ours.id for pid in expected]
            assert {p.backend for p in seen.programs} == {Backend.TCX}

            # Both run (each returns TCX_NEXT); detaching ours leaves theirs in place.
            assert through_hook(veth_pair, Hook.TC_INGRESS, 10) == 10
            assert (ours.count(), theirs.count()) == (10, 10)
            attach.detach(idx, Hook.TC_INGRESS, bpffs_root)
            (left,) = observe(idx, Hook.TC_INGRESS, bpffs_root).programs
            assert (left.prog_id, left.ours) == (theirs.id, False)
        finally:
            os.close(foreign_link)


def test_pinned_link_outlives_process_and_fd_close(veth_pair, bpffs_root, counters):
    a = counters(Hook.TC_INGRESS)
    with veth_pair.inside_a():
        attach.attach(veth_pair.ifindex_a, Hook.TC_INGRESS, a.fd, bpffs_root, TCX)
    a.program.close()  # our program fd and map fd go; the pinned link keeps the program running
    with veth_pair.inside_a():
        (running,) = observe(veth_pair.ifindex_a, Hook.TC_INGRESS, bpffs_root).programs
    assert running.ours
    assert through_hook(veth_pair, Hook.TC_INGRESS, 10) == 10
    assert count_of_prog(running.prog_id) == 10


def test_detach_after_someone_else_detached_our_link(veth_pair, bpffs_root, counters):
    a = counters(Hook.TC_INGRESS)
    with veth_pair.inside_a():
        got = attach.attach(veth_pair.ifindex_a, Hook.TC_INGRESS, a.fd, bpffs_root, TCX)
        fd = bpf.link_get_fd_by_id(got.link_id)
        try:
            bpf.link_detach(fd)  # another tool detaches our link; our pin keeps a defunct link
        finally:
            os.close(fd)
        assert observe(veth_pair.ifindex_a, Hook.TC_INGRESS, bpffs_root).programs == ()
        with pytest.raises(AttachError, match="replacing failed"):
            attach.replace(veth_pair.ifindex_a, Hook.TC_INGRESS, a.fd, bpffs_root)
        assert attach.detach(veth_pair.ifindex_a, Hook.TC_INGRESS, bpffs_root) is True
        assert attach.held_by(veth_pair.ifindex_a, Hook.TC_INGRESS, bpffs_root) is None


def test_a_stale_expected_revision_is_refused(veth_pair, bpffs_root, counters):
    a, b = counters(Hook.TC_INGRESS, "a"), counters(Hook.TC_INGRESS, "b")
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        hook_dir = bpffs_root.hook_dir(idx, Hook.TC_INGRESS)
        seen = tcx.query(idx, Hook.TC_INGRESS).revision
        foreign_link = bpf.link_create(b.fd, idx, bpf.AttachType.TCX_INGRESS)  # changes the hook meanwhile
        try:
            with pytest.raises(bpf.BpfError) as stale:
                tcx.attach(idx, Hook.TC_INGRESS, a.fd, hook_dir, TcPosition.FIRST, expected_revision=seen)
            assert stale.value.errno == errno.ESTALE
            assert not (hook_dir / "link").exists()
            now = tcx.query(idx, Hook.TC_INGRESS).revision
            tcx.attach(idx, Hook.TC_INGRESS, a.fd, hook_dir, TcPosition.FIRST, expected_revision=now)
            assert tcx.query(idx, Hook.TC_INGRESS).prog_ids == (a.id, b.id)
        finally:
            os.close(foreign_link)
