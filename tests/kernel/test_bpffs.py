"""The bpffs state root: folder layout, idempotent creation, removal."""

from __future__ import annotations

import ctypes
import os

import pytest

from bpfunits.hooks import Hook
from bpfunits.sys import bpf
from bpfunits.state.bpffs import BPF_FS_MAGIC, BpffsError, ensure_mounted, prune_empty

pytestmark = pytest.mark.kernel


def test_ensure_mounted_is_idempotent(bpffs_root):
    ensure_mounted()
    ensure_mounted()
    assert os.path.ismount("/sys/fs/bpf")


def test_folders_are_created_idempotently_where_documented(bpffs_root):
    unit = bpffs_root.unit_dir("counter.xdp")
    assert unit == bpffs_root.path / "units" / "counter%2exdp" and unit.is_dir()
    assert bpffs_root.unit_dir("counter.xdp") == unit
    hook = bpffs_root.hook_dir(7, Hook.TC_INGRESS)
    namespace = f"ns{os.stat('/proc/thread-self/ns/net').st_ino}"
    assert hook == bpffs_root.path / "hooks" / namespace / "if7" / "tc-ingress" and hook.is_dir()
    assert bpffs_root.hook_dir(7, Hook.TC_INGRESS) == hook


def test_remove_unit_unpins_its_objects_and_spares_others(bpffs_root):
    fd = bpf.map_create(bpf.MapType.ARRAY, 4, 4, 1)
    try:
        bpf.obj_pin(fd, str(bpffs_root.unit_dir("a") / "m"))
        bpf.obj_pin(fd, str(bpffs_root.unit_dir("b") / "m"))
    finally:
        os.close(fd)
    bpffs_root.remove_unit("a")
    bpffs_root.remove_unit("a")  # already gone: fine
    assert not bpffs_root.unit_path("a").exists()
    assert (bpffs_root.unit_path("b") / "m").exists()


@pytest.mark.parametrize("name", ["", "a/b"])
def test_unit_names_that_escape_the_folder_are_refused(bpffs_root, name):
    with pytest.raises(BpffsError):
        bpffs_root.unit_dir(name)


def test_dots_and_percents_in_unit_names_map_to_distinct_folders(bpffs_root):
    names = ["a.b", "a%2eb", "..", "x@y-z_1"]
    folders = {bpffs_root.unit_dir(n) for n in names}
    assert len(folders) == len(names) and all(f.is_dir() for f in folders)


def test_state_root_is_on_bpffs(bpffs_root):
    # statfs f_type is the first field of struct statfs on x86-64 (a long).
    buf = ctypes.create_string_buffer(120)
    assert ctypes.CDLL(None).statfs(os.fsencode(bpffs_root.path), buf) == 0
    assert int.from_bytes(buf.raw[:8], "little") == BPF_FS_MAGIC


def test_prune_empty_removes_empty_folders_only_and_follows_no_symlink(bpffs_root, tmp_path):
    hooks = bpffs_root.path / "hooks"
    (hooks / "a" / "b" / "c").mkdir(parents=True)  # empty all the way: a goes
    (hooks / "d" / "e").mkdir(parents=True)
    fd = bpf.map_create(bpf.MapType.ARRAY, 4, 4, 1)
    try:
        bpf.obj_pin(fd, str(hooks / "d" / "pin"))  # d holds a pin: only e goes
    finally:
        os.close(fd)
    outside = tmp_path / "outside"
    (outside / "empty").mkdir(parents=True)
    (hooks / "link").symlink_to(outside)  # a symlink stays, and what it leads to is untouched
    prune_empty(hooks)
    assert sorted(os.listdir(hooks)) == ["d", "link"] and os.listdir(hooks / "d") == ["pin"]
    assert (outside / "empty").is_dir()
