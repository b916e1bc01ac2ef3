"""Changes through route netlink (bpfunits/sys/rtnl.py, encoded by hand) as the kernel and
iproute2 read them back, and the kernel's words in its refusals."""

from __future__ import annotations

import errno
import subprocess

import pytest

from bpfunits.hooks import Hook, clsbpf, xdp
from bpfunits.sys.rtnl import RtnlError

pytestmark = pytest.mark.kernel


def tc(pair, *args: str) -> str:
    return subprocess.run(["tc", "-n", pair.ns_a, *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.matrix
def test_a_filter_put_and_deleted_by_hand_reads_back_in_iproute2(veth_pair, counters):
    program = counters(Hook.TC_INGRESS, "a")
    with veth_pair.inside_a():
        clsbpf.put(veth_pair.ifindex_a, Hook.TC_INGRESS, program.fd, clsbpf.Slot(prio=3, handle=0x2A), "by_hand")
    shown = tc(veth_pair, "filter", "show", "dev", veth_pair.if_a, "ingress")
    assert "filter protocol all pref 3 bpf" in shown
    assert "handle 0x2a by_hand direct-action" in shown
    assert f"id {program.id}" in shown
    assert "qdisc clsact ffff:" in tc(veth_pair, "qdisc", "show", "dev", veth_pair.if_a)

    with veth_pair.inside_a():
        clsbpf.delete(veth_pair.ifindex_a, Hook.TC_INGRESS, clsbpf.Slot(prio=3, handle=0x2A))
        assert clsbpf.filters(veth_pair.ifindex_a, Hook.TC_INGRESS) == []
        clsbpf.delete_clsact(veth_pair.ifindex_a)
    assert "clsact" not in tc(veth_pair, "qdisc", "show", "dev", veth_pair.if_a)


def test_a_refusal_names_the_change_and_quotes_the_kernel(veth_pair, counters):
    a, b = counters(Hook.XDP, "a"), counters(Hook.XDP, "b")
    with veth_pair.inside_a():
        clsbpf.add_clsact(veth_pair.ifindex_a)
        with pytest.raises(RtnlError) as refused:
            clsbpf.add_clsact(veth_pair.ifindex_a)
        assert refused.value.errno == errno.EEXIST
        assert str(refused.value).startswith(f"adding clsact to ifindex {veth_pair.ifindex_a}: File exists (")

        xdp.netlink_set(veth_pair.ifindex_a, a.fd, xdp.XDP_FLAGS_SKB_MODE)
        try:
            # Replacing a program other than the one running: the kernel says which check failed.
            with pytest.raises(RtnlError) as refused:
                xdp.netlink_set(veth_pair.ifindex_a, b.fd, xdp.XDP_FLAGS_SKB_MODE, expected_fd=b.fd)
            assert refused.value.errno == errno.EEXIST
            assert str(refused.value) == (f"setting IFLA_XDP on ifindex {veth_pair.ifindex_a}: File exists "
                                          "(Active program does not match expected)")
            assert xdp.state(veth_pair.ifindex_a).prog_id == a.id
        finally:
            xdp.netlink_set(veth_pair.ifindex_a, -1, xdp.XDP_FLAGS_SKB_MODE)
        assert xdp.state(veth_pair.ifindex_a).prog_id == 0
