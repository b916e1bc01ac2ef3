"""`bpffs.listing`: what the observer reads of a namespace's pin folders in one walk, instead of
asking each hook folder for pins it may not hold."""

from __future__ import annotations

import os

from bpfunits.state.bpffs import listing


def test_listing_two_levels_down_without_following_symlinks(tmp_path):
    (tmp_path / "if3" / "xdp").mkdir(parents=True)
    (tmp_path / "if3" / "xdp" / "link").write_text("")
    (tmp_path / "if3" / "tc-ingress").mkdir()
    (tmp_path / "if3" / "tc-egress").write_text("")  # something else where a folder belongs
    (tmp_path / "if4").write_text("")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    (outside / "xdp").mkdir(parents=True)
    os.symlink(outside, tmp_path / "if5")
    assert listing(tmp_path, 2) == {
        "if3": {"xdp": {"link": {}}, "tc-ingress": {}, "tc-egress": None},
        "if4": None,
        "if5": None,
    }
    assert listing(tmp_path, 0) == {"if3": {}, "if4": {}, "if5": {}}
    assert listing(tmp_path / "missing", 2) == {}
