"""Issue 11 #3: FIFOs, devices, folders and oversized files as unit files, drop-ins, the configuration,
objects and sources. Each is one error naming the file; none hangs, none is read whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bpfunits.config import ConfigError, load_config
from bpfunits.hooks import Hook
from bpfunits.load.load import LoadError
from bpfunits.reconcile.progcache import load_unit_program
from bpfunits.units.model import Program, Unit
from bpfunits.units.search import load_units
from bpfunits.untrusted import FilePolicy
from tests.hardening.bounded import within
from tests.unitfiles import write

UNIT = "[Program]\nObject=/nowhere.bpf.o\n[Attach]\nHook=xdp\nInterfaces=veth0\n"
BIG = 200 << 20


def errors(folder: Path, policy: FilePolicy = FilePolicy()) -> list[str]:
    with within(5):
        result = load_units((folder,), policy=policy)
    assert not result.units and not result.masked
    return [str(d) for d in result.errors]


def test_special_files_fifo_unit_file_is_an_error_not_a_mask(tmp_path):
    os.mkfifo(tmp_path / "a.unit")
    assert errors(tmp_path) == [f"{tmp_path}/a.unit: error: unit a: not a regular file (a FIFO)"]


def test_special_files_fifo_dropin_does_not_hang(tmp_path):
    write(tmp_path, "a.unit", UNIT)
    (tmp_path / "a.d").mkdir()
    os.mkfifo(tmp_path / "a.d/10-x.conf")
    assert errors(tmp_path) == [f"{tmp_path}/a.d/10-x.conf: error: unit a: not a regular file (a FIFO)"]


def test_special_files_dev_zero_unit_file_is_never_read(tmp_path):
    (tmp_path / "a.yaml").symlink_to("/dev/zero")
    assert errors(tmp_path) == [f"{tmp_path}/a.yaml: error: unit a: not a regular file (a character device)"]


def test_special_files_folder_as_unit_file(tmp_path):
    (tmp_path / "a.unit").mkdir()
    assert errors(tmp_path) == [f"{tmp_path}/a.unit: error: unit a: not a regular file (a folder)"]


def test_special_files_oversized_unit_file_is_refused_unread(tmp_path):
    path = write(tmp_path, "a.unit", UNIT)
    os.truncate(path, BIG)  # sparse: costs no disk
    assert errors(tmp_path) == [f"{path}: error: unit a: the file is {BIG} bytes, more than the limit of {1 << 20}"]


def test_special_files_unit_size_limit_is_configurable(tmp_path):
    write(tmp_path, "a.unit", UNIT)
    assert errors(tmp_path, FilePolicy(max_unit_size=10))[0].endswith(f"the file is {len(UNIT)} bytes, more than the limit of 10")


def test_special_files_fifo_configuration(tmp_path):
    os.mkfifo(tmp_path / "c.yaml")
    with within(5), pytest.raises(ConfigError, match=r"c\.yaml: not a regular file \(a FIFO\)"):
        load_config(tmp_path / "c.yaml")


def test_special_files_oversized_configuration(tmp_path):
    (tmp_path / "c.yaml").write_text("counters: true\n")
    os.truncate(tmp_path / "c.yaml", BIG)
    with within(5), pytest.raises(ConfigError, match=rf"c\.yaml: the file is {BIG} bytes, more than the limit"):
        load_config(tmp_path / "c.yaml")


def program_unit(tmp_path: Path, **program) -> Unit:
    return Unit("a", tmp_path / "a.unit", Hook.XDP, Program(**program), ("veth0",), Hook.XDP.default_proceed_on)


@pytest.mark.kernel
@pytest.mark.parametrize("key", ["object", "source"])
def test_special_files_fifo_object_or_source_does_not_hang(tmp_path, bpffs_root, key):
    os.mkfifo(tmp_path / "p")
    with within(5), pytest.raises(LoadError, match=rf"unit a: BPF file {tmp_path}/p: not a regular file \(a FIFO\)"):
        load_unit_program(program_unit(tmp_path, **{key: tmp_path / "p"}), bpffs_root)


@pytest.mark.kernel
def test_special_files_dev_zero_object_is_never_read(tmp_path, bpffs_root):
    with within(5), pytest.raises(LoadError, match=r"/dev/zero: not a regular file \(a character device\)"):
        load_unit_program(program_unit(tmp_path, object=Path("/dev/zero")), bpffs_root)


@pytest.mark.kernel
def test_special_files_oversized_object_is_refused_unread(tmp_path, bpffs_root):
    big = tmp_path / "big.bpf.o"
    big.write_bytes(b"\x7fELF")
    os.truncate(big, 3 << 30)
    with within(5), pytest.raises(LoadError, match=rf"the file is {3 << 30} bytes, more than the limit of {64 << 20}"):
        load_unit_program(program_unit(tmp_path, object=big), bpffs_root)
