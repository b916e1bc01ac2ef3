"""Which programs declare XDP multi-buffer support, and when a chain without it is refused."""

from __future__ import annotations

import pytest

from bpfunits.hooks import frags
from bpfunits.load.load import is_frags_section


@pytest.mark.parametrize(("section", "declared"), [
    ("xdp.frags", True), ("xdp.frags/devmap", True), ("xdp", False), ("xdp/frags", False), ("xdp.fragsx", False),
])  # fmt: skip
def test_frags_are_declared_by_libbpfs_frags_sections(section, declared):
    assert is_frags_section(section) is declared


def test_an_mtu_a_page_holds_needs_no_frags():
    assert frags.single_buffer_mtu(4096) == 3506
    frags.check("eth9", frags.single_buffer_mtu(), ("a", "b"))
    frags.check("eth9", 9000, ())


def test_a_jumbo_mtu_refuses_a_chain_naming_the_units_without_frags():
    with pytest.raises(frags.FragsNeeded, match=r"eth9: its MTU 9000 needs .* units a, b do not declare it"):
        frags.check("eth9", 9000, ("a", "b"))
