"""Issue 11 #1: bpffs is often mode 1777, so anyone may create the state root first, with `units` and
`hooks` as symlinks to folders of their choice: apply must never follow them (and so never remove
what they point to), refuse such a root with a clear error, and create its own root mode 0700."""

from __future__ import annotations

import os
import stat

import pytest

from bpfunits.cli import main
from bpfunits.state.bpffs import BpffsError, StateRoot
from tests.hardening.statecli import unit
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
NOBODY = 65534


def _victims(tmp_path):
    """Folders outside bpffs with something in them, as a hostile root's symlinks would name."""
    victims = {}
    for name in ("units", "hooks"):
        folder = tmp_path / f"victim-{name}"
        write(folder / "data", "precious", "keep me\n")
        victims[name] = folder
    return victims


def _apply(capsys, veth_pair, units, root) -> tuple[int, str]:
    code = main(["apply", "--netns", veth_pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(root)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("owner", [NOBODY, 0])
def test_root_deletes_outside_bpffs_through_symlinks_in_a_prepared_root(
    tmp_path, capsys, veth_pair, bpffs_root, bpf_objects, owner
):
    units = tmp_path / "units"
    write(units, "count.unit", unit("counter.bpf.o"))
    root = bpffs_root.path / "prepared"
    root.mkdir(mode=0o755)
    victims = _victims(tmp_path)
    for name, target in victims.items():
        os.symlink(target, root / name)
        os.lchown(root / name, NOBODY, NOBODY)
    os.chown(root, owner, owner)

    code, err = _apply(capsys, veth_pair, units, root)
    assert code == 1
    why = "owned by uid 65534" if owner else "units is not a folder (a symlink?)"
    assert f"bpfunits: bpffs state root {root}" in err and why in err
    for target in victims.values():
        assert (target / "data" / "precious").read_text() == "keep me\n", "nothing outside bpffs removed"


def test_root_deletes_outside_bpffs_refuses_a_root_others_may_write(tmp_path, capsys, veth_pair, bpffs_root):
    root = bpffs_root.path / "open"
    root.mkdir()
    os.chmod(root, 0o777)
    code, err = _apply(capsys, veth_pair, tmp_path, root)
    assert code == 1 and "is writable by group or others (mode 0777)" in err


def test_root_deletes_outside_bpffs_refuses_a_root_not_on_bpffs(tmp_path, capsys, veth_pair):
    code, err = _apply(capsys, veth_pair, tmp_path, tmp_path / "root")
    assert code == 1 and "is not on bpffs" in err


def test_root_deletes_outside_bpffs_creates_its_root_0700(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "count.unit", unit("counter.bpf.o"))
    root = bpffs_root.path / "made"
    code, _ = _apply(capsys, veth_pair, units, root)
    assert code == 0
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(d).st_mode) == 0o700 for d in (root / "units", root / "hooks"))


def test_root_deletes_outside_bpffs_walks_never_follow_symlinks(tmp_path, bpffs_root):
    victims = _victims(tmp_path)
    os.symlink(victims["units"], bpffs_root.path / "units")
    with pytest.raises(BpffsError, match="a symlink"):
        StateRoot(bpffs_root.path).check(create=False)
    with pytest.raises(BpffsError, match="a symlink"):
        bpffs_root.unit_dir("x")
    with pytest.raises(BpffsError, match="a symlink"):
        bpffs_root.remove_unit("data")  # what the symlink points to holds a `data`: never reached
    assert (victims["units"] / "data" / "precious").exists()
