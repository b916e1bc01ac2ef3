"""Probing the kernel's attach features without touching any real interface, and choosing
backends from what it found."""

from __future__ import annotations

import os

import pytest

from bpfunits.errors import BpfUnitsError
from bpfunits.kernel import probe
from bpfunits.kernel.probe import Features, TcBackend, XdpBackend, choose_tc_backend, choose_xdp_backend

NEW, OLD = Features(xdp_link=True, tcx=True), Features(xdp_link=False, tcx=False)


@pytest.mark.kernel
def test_this_kernel_has_xdp_links_and_tcx():
    probe.features.cache_clear()
    home = os.readlink("/proc/thread-self/ns/net")
    assert probe.features() == NEW
    assert os.readlink("/proc/thread-self/ns/net") == home  # the probe's namespace was private


def test_auto_picks_the_best_the_kernel_has():
    assert (choose_xdp_backend(XdpBackend.AUTO, NEW), choose_tc_backend(TcBackend.AUTO, NEW)) == (
        XdpBackend.LINK, TcBackend.TCX
    )
    assert (choose_xdp_backend(XdpBackend.AUTO, OLD), choose_tc_backend(TcBackend.AUTO, OLD)) == (
        XdpBackend.NETLINK, TcBackend.CLS_BPF
    )


def test_forced_backends_are_kept_when_available():
    assert choose_xdp_backend(XdpBackend.NETLINK, NEW) is XdpBackend.NETLINK
    assert choose_tc_backend(TcBackend.CLS_BPF, NEW) is TcBackend.CLS_BPF
    assert choose_xdp_backend(XdpBackend.NETLINK, OLD) is XdpBackend.NETLINK


def test_forcing_a_missing_feature_is_a_clear_error():
    with pytest.raises(BpfUnitsError, match="needs Linux 6.6"):
        choose_tc_backend(TcBackend.TCX, OLD)
    with pytest.raises(BpfUnitsError, match="cannot attach XDP through bpf_link"):
        choose_xdp_backend(XdpBackend.LINK, OLD)
