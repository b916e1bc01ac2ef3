"""Swapping programs while frames flow loses none: every frame that arrived was counted by
exactly one of the two programs swapped in turn, for every backend."""

from __future__ import annotations

import time

import pytest

from bpfunits.hooks import Hook
from bpfunits.hooks import attach
from bpfunits.hooks.attach import AttachOptions
from bpfunits.hooks.probe import TcBackend, XdpBackend
from tests.fixtures.features import tcx_param
from tests.traffic import Flow

pytestmark = pytest.mark.kernel

SWAPS = 200

CASES = {
    "xdp-link": (Hook.XDP, AttachOptions(xdp_backend=XdpBackend.LINK)),
    "xdp-netlink": (Hook.XDP, AttachOptions(xdp_backend=XdpBackend.NETLINK)),
    "tcx": (Hook.TC_INGRESS, AttachOptions(tc_backend=TcBackend.TCX)),
    "cls_bpf": (Hook.TC_INGRESS, AttachOptions(tc_backend=TcBackend.CLS_BPF)),
}


@pytest.mark.parametrize("case", [tcx_param(c) if c == "tcx" else c for c in CASES])
def test_swaps_under_traffic_lose_nothing(veth_pair, bpffs_root, counters, case):
    hook, options = CASES[case]
    a, b = counters(hook, "a"), counters(hook, "b")
    idx = veth_pair.ifindex_a
    with veth_pair.inside_a():
        attach.attach(idx, hook, a.fd, bpffs_root, options)
    with Flow(veth_pair.ns_b, veth_pair.if_b, veth_pair.ns_a, veth_pair.if_a) as flow:
        with veth_pair.inside_a():
            started = time.perf_counter()
            for i in range(SWAPS):
                new, old = (b, a) if i % 2 == 0 else (a, b)
                assert attach.replace(idx, hook, new.fd, bpffs_root, old_prog_fd=old.fd).prog_id == new.id
                time.sleep(0.001)  # let frames through between swaps
            elapsed = time.perf_counter() - started
        flow.stop()
    print(f"{case}: {SWAPS} swaps in {elapsed * 1000:.0f} ms while {flow.sent} frames were sent, "
          f"{flow.arrived} arrived; counted {a.count()} + {b.count()}")
    assert a.count() > 0 and b.count() > 0  # both ran: the swaps happened under traffic
    assert a.count() + b.count() == flow.arrived
    assert flow.arrived == flow.sent
