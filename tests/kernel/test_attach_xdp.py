"""XDP attachment through both backends (bpf_link, netlink), on a veth pair between namespaces."""

from __future__ import annotations

import os
import subprocess

import pytest

from bpfunits.hooks import Hook
from bpfunits.hooks import attach, xdp
from bpfunits.state import pins
from bpfunits.sys import bpf
from bpfunits.hooks.attach import AttachError, AttachOptions
from bpfunits.hooks.observe import Backend, observe
from bpfunits.hooks.probe import XdpBackend
from bpfunits.hooks.xdp import XdpMode
from tests.fixtures.counters import count_of_prog
from tests.traffic import through_hook

pytestmark = pytest.mark.kernel

BACKENDS = {XdpBackend.LINK: Backend.XDP_LINK, XdpBackend.NETLINK: Backend.XDP_NETLINK}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.matrix
def test_attach_observe_replace_detach(veth_pair, bpffs_root, counters, backend):
    a, b = counters(Hook.XDP, "a"), counters(Hook.XDP, "b")
    options = AttachOptions(xdp_backend=backend)
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        got = attach.attach(idx, Hook.XDP, a.fd, bpffs_root, options)
        assert (got.prog_id, got.name, got.tag, got.backend, got.ours) == (
            a.id, a.name, a.program.tag, BACKENDS[backend], True
        )
        assert got.mode == "driver"  # veth has native XDP; auto picks it
        assert (got.link_id is not None) == (backend is XdpBackend.LINK)
        assert attach.held_by(idx, Hook.XDP, bpffs_root) is BACKENDS[backend]
        assert observe(idx, Hook.XDP, bpffs_root).programs == (got,)

    assert through_hook(veth_pair, Hook.XDP, 50) == 50
    assert (a.count(), b.count()) == (50, 0)

    with veth_pair.inside_a():
        swapped = attach.replace(idx, Hook.XDP, b.fd, bpffs_root, old_prog_fd=a.fd)
        assert (swapped.prog_id, swapped.link_id, swapped.ours) == (b.id, got.link_id, True)
        # A stale expectation (a runs no more) is refused, and nothing changes.
        with pytest.raises(AttachError, match="replacing failed"):
            attach.replace(idx, Hook.XDP, a.fd, bpffs_root, old_prog_fd=a.fd)
        assert observe(idx, Hook.XDP, bpffs_root).programs == (swapped,)

    assert through_hook(veth_pair, Hook.XDP, 30) == 30
    assert (a.count(), b.count()) == (50, 30)

    with veth_pair.inside_a():
        assert attach.detach(idx, Hook.XDP, bpffs_root) is True
        assert observe(idx, Hook.XDP, bpffs_root).programs == ()
        assert not bpffs_root.hook_path(idx, Hook.XDP).parent.exists()  # folders pruned
        assert attach.detach(idx, Hook.XDP, bpffs_root) is False

    assert through_hook(veth_pair, Hook.XDP, 10) == 10
    assert (a.count(), b.count()) == (50, 30)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_generic_mode_as_configured(veth_pair, bpffs_root, counters, backend):
    a = counters(Hook.XDP)
    with veth_pair.inside_a():
        got = attach.attach(
            veth_pair.ifindex_a, Hook.XDP, a.fd, bpffs_root, AttachOptions(xdp_backend=backend, xdp_mode=XdpMode.GENERIC)
        )
    assert got.mode == "generic"
    assert through_hook(veth_pair, Hook.XDP, 20) == 20
    assert a.count() == 20


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_attach_twice_is_refused(veth_pair, bpffs_root, counters, backend):
    a, b = counters(Hook.XDP, "a"), counters(Hook.XDP, "b")
    with veth_pair.inside_a():
        attach.attach(veth_pair.ifindex_a, Hook.XDP, a.fd, bpffs_root, AttachOptions(xdp_backend=backend))
        with pytest.raises(AttachError, match="replace it instead"):
            attach.attach(veth_pair.ifindex_a, Hook.XDP, b.fd, bpffs_root, AttachOptions(xdp_backend=backend))
        assert observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs[0].prog_id == a.id


def ip_attach_foreign(pair, bpf_objects) -> None:
    """Another tool attaches an XDP program to A's interface (ip keeps the mount namespace
    with -n, unlike ip netns exec; the object is all it needs)."""
    subprocess.run(
        ["ip", "-n", pair.ns_a, "link", "set", "dev", pair.if_a, "xdpgeneric",
         "obj", str(bpf_objects / "attach_foreign.bpf.o"), "sec", "xdp"],
        check=True, capture_output=True,
    )


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.matrix
def test_foreign_program_is_left_alone(veth_pair, bpffs_root, counters, bpf_objects, backend):
    ip_attach_foreign(veth_pair, bpf_objects)
    a = counters(Hook.XDP)
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        (foreign,) = observe(idx, Hook.XDP, bpffs_root).programs
        assert (foreign.name, foreign.backend, foreign.mode, foreign.ours) == (
            "foreign_xdp", Backend.XDP_NETLINK, "generic", False
        )
        refusal = r"runs program id \d+ \('foreign_xdp', xdp-netlink\) that bpfunits did not attach"
        with pytest.raises(AttachError, match=refusal):
            attach.attach(idx, Hook.XDP, a.fd, bpffs_root, AttachOptions(xdp_backend=backend))
        assert observe(idx, Hook.XDP, bpffs_root).programs == (foreign,)
        assert attach.held_by(idx, Hook.XDP, bpffs_root) is None
        # Nothing of ours there: detach and replace leave the foreign program alone too.
        assert attach.detach(idx, Hook.XDP, bpffs_root) is False
        with pytest.raises(AttachError, match="no program attached to replace"):
            attach.replace(idx, Hook.XDP, a.fd, bpffs_root)
        assert observe(idx, Hook.XDP, bpffs_root).programs == (foreign,)

    assert through_hook(veth_pair, Hook.XDP, 20) == 20
    assert (count_of_prog(foreign.prog_id), a.count()) == (20, 0)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_foreign_program_attached_meanwhile_is_named(veth_pair, bpffs_root, counters, bpf_objects, backend,
                                                       monkeypatch):
    """Issue 11 #16: someone attaches between bpfunits' look and its attach; the refusal names
    their program, not the errno (it said "BPF_LINK_CREATE: File exists")."""
    a = counters(Hook.XDP)
    looked = []

    def before_them(ifindex, hook, root):  # bpfunits' look, then theirs lands
        seen = observe(ifindex, hook, root)
        if not looked:
            looked.append(seen)
            ip_attach_foreign(veth_pair, bpf_objects)
        return seen

    monkeypatch.setattr(attach, "observe", before_them)
    with veth_pair.inside_a():
        raced = r"runs program id \d+ \('foreign_xdp', xdp-netlink, attached while bpfunits was attaching\)"
        with pytest.raises(AttachError, match=raced):
            attach.attach(veth_pair.ifindex_a, Hook.XDP, a.fd, bpffs_root, AttachOptions(xdp_backend=backend))
        assert looked[0].programs == ()
        assert attach.held_by(veth_pair.ifindex_a, Hook.XDP, bpffs_root) is None


@pytest.mark.matrix
def test_takeover_of_a_netlink_program(veth_pair, bpffs_root, counters, bpf_objects):
    ip_attach_foreign(veth_pair, bpf_objects)
    a = counters(Hook.XDP)
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        (foreign,) = observe(idx, Hook.XDP, bpffs_root).programs
        keep = bpf.prog_get_fd_by_id(foreign.prog_id)  # detached, it would go away unread
        try:
            got = attach.attach(idx, Hook.XDP, a.fd, bpffs_root, takeover=True)
            # Swapped in one step through the foreign program's own mechanism and mode.
            assert (got.prog_id, got.backend, got.mode, got.ours) == (a.id, Backend.XDP_NETLINK, "generic", True)
            assert through_hook(veth_pair, Hook.XDP, 10) == 10
            assert (count_of_prog(foreign.prog_id), a.count()) == (0, 10)
        finally:
            os.close(keep)


def test_takeover_of_a_foreign_link(veth_pair, bpffs_root, counters):
    a, b = counters(Hook.XDP, "a"), counters(Hook.XDP, "b")
    elsewhere = bpffs_root.path / "elsewhere"  # another tool's pin folder, outside our hooks/
    elsewhere.mkdir()
    with veth_pair.inside_a():
        idx = veth_pair.ifindex_a
        foreign_link = xdp.attach_link(idx, b.fd, elsewhere, XdpMode.AUTO)
        (foreign,) = observe(idx, Hook.XDP, bpffs_root).programs
        assert (foreign.link_id, foreign.backend, foreign.ours) == (foreign_link, Backend.XDP_LINK, False)
        with pytest.raises(AttachError, match="did not attach"):
            attach.attach(idx, Hook.XDP, a.fd, bpffs_root)
        got = attach.attach(idx, Hook.XDP, a.fd, bpffs_root, takeover=True)
        assert (got.prog_id, got.link_id, got.backend, got.ours) == (a.id, foreign_link, Backend.XDP_LINK, True)
        assert pins.link_info(bpffs_root.hook_dir(idx, Hook.XDP)).id == foreign_link
    assert through_hook(veth_pair, Hook.XDP, 10) == 10
    assert (a.count(), b.count()) == (10, 0)


def test_detach_after_someone_else_removed_ours_only_unpins(veth_pair, bpffs_root, counters):
    a = counters(Hook.XDP)
    with veth_pair.inside_a():
        attach.attach(veth_pair.ifindex_a, Hook.XDP, a.fd, bpffs_root, AttachOptions(xdp_backend=XdpBackend.NETLINK))
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a, "xdp", "off"], check=True)
    with veth_pair.inside_a():
        assert attach.held_by(veth_pair.ifindex_a, Hook.XDP, bpffs_root) is Backend.XDP_NETLINK
        assert observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs == ()
        with pytest.raises(AttachError, match="replacing failed"):
            attach.replace(veth_pair.ifindex_a, Hook.XDP, a.fd, bpffs_root)
        assert attach.detach(veth_pair.ifindex_a, Hook.XDP, bpffs_root) is True
        assert attach.held_by(veth_pair.ifindex_a, Hook.XDP, bpffs_root) is None
