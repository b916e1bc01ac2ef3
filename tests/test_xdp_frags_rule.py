"""Which programs declare XDP multi-buffer support, and when a chain without it is refused."""

from __future__ import annotations

import errno

import pytest

from bpfunits.hooks import frags
from bpfunits.load.load import is_frags_section
from bpfunits.sys.bpf import BpfError
from bpfunits.sys.rtnl import RtnlError


@pytest.mark.parametrize(("section", "declared"), [
    ("xdp.frags", True), ("xdp.frags/devmap", True), ("xdp", False), ("xdp/frags", False), ("xdp.fragsx", False),
])  # fmt: skip
def test_frags_are_declared_by_libbpfs_frags_sections(section, declared):
    assert is_frags_section(section) is declared


def test_an_mtu_a_page_holds_needs_no_frags():
    assert frags.single_buffer_mtu(4096) == 3506
    frags.check("eth9", frags.single_buffer_mtu(), frags.single_buffer_mtu(), ("a", "b"))
    frags.check("eth9", 9000, frags.single_buffer_mtu(), ())


def test_a_jumbo_mtu_refuses_a_chain_naming_the_units_without_frags():
    with pytest.raises(frags.FragsNeeded, match=r"eth9: its MTU 9000 needs .* units a, b do not declare it"):
        frags.check("eth9", 9000, 3506, ("a", "b"))


@pytest.mark.parametrize(("kind", "mode", "limit"), [
    ("veth", "driver", 3506), ("veth", "auto", 3506), ("veth", "generic", None), ("", "driver", None),
    ("virtio", "auto", None),
])  # fmt: skip
def test_the_limit_is_known_in_advance_only_for_veth_in_native_mode(kind, mode, limit):
    assert frags.known_limit(kind, mode) == (limit and frags.single_buffer_mtu())


def test_the_kernels_mtu_refusal_becomes_the_frags_error():
    refusal = BpfError("LINK_CREATE", errno.ERANGE)
    found = frags.refused("eth9", 9000, ("a",), refusal)
    assert found is not None and "unit a does not declare it" in str(found) and "Numerical result" in str(found)
    wrapped = RuntimeError("attaching failed")
    wrapped.__cause__ = RtnlError("setting IFLA_XDP", errno.EINVAL, "virtio_net: MTU too large to enable XDP")
    assert "MTU too large to enable XDP" in str(frags.refused("eth9", 9000, ("a", "b"), wrapped))


@pytest.mark.parametrize(("mtu", "without", "err"), [
    (9000, (), errno.ERANGE), (1500, ("a",), errno.ERANGE), (9000, ("a",), errno.EBUSY),
])  # fmt: skip
def test_other_refusals_stay_what_they_are(mtu, without, err):
    assert frags.refused("eth9", mtu, without, BpfError("LINK_CREATE", err)) is None
