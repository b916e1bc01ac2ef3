"""A uprobe unit's binary is any path an operator (or a typo) names: root reads it to find the
symbol's offset. A FIFO, a device or an oversized file is refused without being read, and any
content is an offset or one error of bpfunits' own."""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfunits.sys import elfsym
from tests.hardening.bounded import within



@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uprobe")
    source = folder / "target.c"
    source.write_text("int bpfunits_target(int x) { return x + 1; }\nint main(void) { return bpfunits_target(0); }\n")
    built = folder / "target"
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (scripts/setup-host.sh)")
    subprocess.run(["clang", "-O1", "-o", str(built), str(source)], check=True)
    return built.read_bytes()


def test_a_symbol_of_a_real_binary_has_its_offset(tmp_path, binary):
    path = tmp_path / "target"
    path.write_bytes(binary)
    offset = elfsym.file_offset(path, "bpfunits_target")
    assert 0 < offset < len(binary)
    with pytest.raises(elfsym.SymbolError, match="has no symbol nonesuch"):
        elfsym.file_offset(path, "nonesuch")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with within(5.0), pytest.raises(elfsym.SymbolError, match="not a regular file"):
        elfsym.file_offset(fifo, "main")


def test_a_device_and_a_folder_are_refused(tmp_path):
    for path in ("/dev/zero", tmp_path):
        with within(5.0), pytest.raises(elfsym.SymbolError):
            elfsym.file_offset(path, "main")


def test_an_oversized_file_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(elfsym, "MAX_SIZE", 1000)
    path = tmp_path / "big"
    path.write_bytes(b"\x7fELF\x02\x01" + bytes(2000))
    with pytest.raises(elfsym.SymbolError, match="more than the limit of 1000"):
        elfsym.file_offset(path, "main")


def test_a_symbol_table_larger_than_the_file_is_an_error(tmp_path, binary):
    # Every section header claiming a symbol table of 2^40 bytes, with 1-byte entries.
    data = bytearray(binary)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    for i in range(shnum):
        at = shoff + i * shentsize
        if struct.unpack_from("<I", data, at + 4)[0] in (2, 11):
            struct.pack_into("<Q", data, at + 32, 1 << 40)
            struct.pack_into("<Q", data, at + 56, 1)
    path = tmp_path / "target"
    path.write_bytes(bytes(data))
    with within(5.0), pytest.raises(elfsym.SymbolError, match="not a valid ELF"):
        elfsym.file_offset(path, "bpfunits_target")


@pytest.mark.parametrize("field", [0x20, 0x28])  # e_phoff, e_shoff
def test_a_table_offset_past_any_index_is_an_error(tmp_path, binary, field):
    # Found by the mutation test below: an offset of 2^63 or more overflowed the unpacking.
    data = bytearray(binary)
    struct.pack_into("<Q", data, field, 1 << 63)
    path = tmp_path / "target"
    path.write_bytes(bytes(data))
    with within(5.0), pytest.raises(elfsym.SymbolError, match="not a valid ELF"):
        elfsym.file_offset(path, "bpfunits_target")


@settings(max_examples=300, deadline=None)
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.floats(0.05, 1))
def test_any_mutation_of_a_binary_is_an_offset_or_a_symbol_error(tmp_path_factory, binary, flips, cut):
    data = bytearray(binary[: max(64, int(len(binary) * cut))])
    for where, value in flips:
        data[int(where * len(data))] = value
    path = tmp_path_factory.mktemp("mutant") / "target"
    path.write_bytes(bytes(data))
    with within(5.0), contextlib.suppress(elfsym.SymbolError):
        elfsym.file_offset(path, "bpfunits_target")
