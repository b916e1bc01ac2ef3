"""Counting programs (bpf/attach_counter.bpf.c) for attach tests: load them, read their counts."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.kernel import bpf
from bpfunits.kernel.bpffs import StateRoot
from bpfunits.kernel.load import LoadedProgram, load_object_program

ZERO = bytes(4)


@dataclass
class Counter:
    program: LoadedProgram

    @property
    def fd(self) -> int:
        return self.program.fd

    @property
    def id(self) -> int:
        return self.program.id

    @property
    def name(self) -> str:
        return self.program.name

    def count(self) -> int:
        return struct.unpack("<Q", bpf.map_lookup(self.program.maps["counts"].fd, ZERO, 8))[0]


def count_of_prog(prog_id: int) -> int:
    """The count of a counting program known only by id (e.g. loaded by another process)."""
    fd = bpf.prog_get_fd_by_id(prog_id)
    try:
        (map_id,) = bpf.prog_info(fd).map_ids
    finally:
        os.close(fd)
    map_fd = bpf.map_get_fd_by_id(map_id)
    try:
        return struct.unpack("<Q", bpf.map_lookup(map_fd, ZERO, 8))[0]
    finally:
        os.close(map_fd)


@pytest.fixture
def counters(bpf_objects: Path, bpffs_root: StateRoot) -> Iterator[Callable[[Hook, str], Counter]]:
    """A factory loading counting program `a` or `b` for a hook; each load has its own map."""
    loaded: list[LoadedProgram] = []

    def load(hook: Hook, which: str = "a") -> Counter:
        kind = "tc" if hook.is_tc else "xdp"
        program = load_object_program(
            bpf_objects / "attach_counter.bpf.o", hook, bpffs_root.path / "counters", name=f"{kind}_count_{which}"
        )
        loaded.append(program)
        return Counter(program)

    try:
        yield load
    finally:
        for program in loaded:
            program.close()
