"""Issue 11 #14: unit files, drop-ins, masks, objects and sources that someone other than root may
write, or that sit in folders someone else may write, are refused (as sshd's StrictModes), unless
`strict_permissions: false`. Root-owned sticky folders (/tmp) are accepted: there nobody may replace
another's entries."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bpfunits.config import load_config
from bpfunits.hooks import Hook
from bpfunits.load.load import LoadError
from bpfunits.reconcile.progcache import load_unit_program
from bpfunits.units.model import Program, Unit
from bpfunits.units.search import load_units
from bpfunits.untrusted import FilePolicy
from tests.unitfiles import write

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="files of other owners are made with chown")

NOBODY = 65534
UNIT = "[Program]\nObject=/x.bpf.o\n[Attach]\nHook=xdp\nInterfaces=veth0\n"
LAX = FilePolicy(strict_permissions=False)


def errors(folder: Path, policy: FilePolicy = FilePolicy()) -> list[str]:
    result = load_units((folder,), policy=policy)
    return [str(d).replace(f"{folder}/", "") for d in result.errors]


def test_strict_permissions_group_writable_unit_file(tmp_path):
    (write(tmp_path, "a.unit", UNIT)).chmod(0o664)
    assert errors(tmp_path) == ["a.unit: error: unit a: the file is writable by group or others (mode 0664; strict_permissions)"]
    assert errors(tmp_path, LAX) == []


def test_strict_permissions_unit_file_of_another_owner(tmp_path):
    os.chown(write(tmp_path, "a.yaml", "program: {object: /x.o}\nattach: {hook: xdp, interfaces: [veth0]}\n"), NOBODY, 0)
    assert errors(tmp_path) == [f"a.yaml: error: unit a: the file is owned by uid {NOBODY}, not root (strict_permissions)"]
    assert errors(tmp_path, LAX) == []


def test_strict_permissions_world_writable_folder_on_the_path(tmp_path):
    units = tmp_path / "open" / "units"
    write(units, "a.unit", UNIT)
    (tmp_path / "open").chmod(0o777)
    assert errors(units) == [
        f"a.unit: error: unit a: folder {tmp_path}/open on its path is writable by group or others "
        "(mode 0777; strict_permissions)"
    ]


def test_strict_permissions_folder_of_another_owner_even_sticky(tmp_path):
    write(tmp_path / "theirs", "a.unit", UNIT)
    os.chown(tmp_path / "theirs", NOBODY, 0)
    (tmp_path / "theirs").chmod(0o1777)
    assert errors(tmp_path / "theirs") == [
        f"a.unit: error: unit a: folder {tmp_path}/theirs on its path is owned by uid {NOBODY}, not root (strict_permissions)"
    ]


def test_strict_permissions_root_sticky_folder_is_accepted(tmp_path):
    write(tmp_path / "tmp", "a.unit", UNIT)
    (tmp_path / "tmp").chmod(0o1777)
    assert errors(tmp_path / "tmp") == []


def test_strict_permissions_read_only_mount_is_not_writable(tmp_path):
    # A Kubernetes ConfigMap volume: folders of mode 0777 (1777 on some kubelets), mounted read-only.
    units = tmp_path / "configmap"
    write(units, "a.unit", UNIT)
    units.chmod(0o777)
    subprocess.run(["mount", "--bind", str(units), str(units)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(units)], check=True)
        assert errors(units) == []
    finally:
        subprocess.run(["umount", str(units)], check=True)
    assert errors(units)[0].endswith("(mode 0777; strict_permissions)"), "writable again once mounted read-write"


def test_strict_permissions_symlinked_unit_checks_both_paths(tmp_path):
    target = write(tmp_path / "open", "a.unit", UNIT)
    (tmp_path / "open").chmod(0o777)
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "a.unit").symlink_to(target)
    assert errors(tmp_path / "units") == [
        f"a.unit: error: unit a: folder {tmp_path}/open on its path is writable by group or others "
        "(mode 0777; strict_permissions)"
    ]


def test_strict_permissions_writable_dropin(tmp_path):
    write(tmp_path, "a.unit", UNIT)
    write(tmp_path, "a.d/10-x.conf", "[Attach]\nHook=tc-ingress\n").chmod(0o666)
    assert errors(tmp_path) == ["a.d/10-x.conf: error: unit a: the file is writable by group or others (mode 0666; strict_permissions)"]


def test_strict_permissions_mask_in_a_writable_folder(tmp_path):
    units = tmp_path / "open"
    (units).mkdir()
    (units / "a.unit").symlink_to(os.devnull)
    units.chmod(0o777)
    result = load_units((units,))
    assert not result.masked
    assert [str(d) for d in result.errors] == [
        f"{units}/a.unit: error: unit a: mask refused: folder {units} on its path is writable by group or others "
        "(mode 0777; strict_permissions)"
    ]
    assert set(load_units((units,), policy=LAX).masked) == {"a"}


def test_strict_permissions_in_the_configuration(tmp_path):
    (tmp_path / "c.yaml").write_text("strict_permissions: false\nmax_unit_size: 4096\n")
    assert load_config(tmp_path / "c.yaml").file_policy == FilePolicy(False, 4096, 64 << 20)


@pytest.mark.kernel
@pytest.mark.parametrize("key", ["object", "source"])
def test_strict_permissions_world_writable_object_or_source(tmp_path, bpffs_root, bpf_objects, key):
    path = tmp_path / "p"
    path.write_bytes((bpf_objects / ("counter.bpf.o" if key == "object" else "bcc_counter.c")).read_bytes())
    path.chmod(0o646)
    unit = Unit("a", tmp_path / "a.unit", Hook.XDP, Program(**{key: path}), ("veth0",), Hook.XDP.default_proceed_on)
    with pytest.raises(LoadError, match=rf"unit a: BPF file {path}: the file is writable by group or others \(mode 0646"):
        load_unit_program(unit, bpffs_root).close()
