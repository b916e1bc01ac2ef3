"""The datapath benchmark's programs (benchmarks/datapath_traffic.py): its floor (N copies of the
component's work in one program) and each chain it links as an earlier version of the linker did
must decide as one component does, or their slopes measure something else."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.linker.progtype import expected_attach_type_of, prog_type_of
from bpfunits.sys import bpf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from datapath_traffic import CHAINS, component, inline_floor, linking_as  # noqa: E402

from bpfunits.linker import asm, linker  # noqa: E402
from bpfunits.linker.component import Component  # noqa: E402

pytestmark = pytest.mark.kernel


def decides_as_the_component(hook: Hook, fd: int) -> None:
    drop = hook.verdicts["shot" if hook.is_tc else "drop"]
    for byte, verdict in ((0, hook.chain_end_verdict), (0xFF, drop), (0xFE, hook.chain_end_verdict)):
        frame = bytes(14) + bytes([byte]) + bytes(49)
        assert bpf.prog_test_run(fd, frame).retval & 0xFFFFFFFF == verdict & 0xFFFFFFFF
    assert bpf.prog_test_run(fd, bytes(14)).retval & 0xFFFFFFFF == hook.chain_end_verdict & 0xFFFFFFFF


@pytest.mark.parametrize("hook", [Hook.TC_INGRESS, Hook.XDP])
@pytest.mark.parametrize("n", [1, 8, 32])
def test_the_inline_floor_decides_as_the_component(hook, n):
    fd = bpf.prog_load(prog_type_of(hook), inline_floor(hook, n), expected_attach_type=expected_attach_type_of(hook))
    try:
        decides_as_the_component(hook, fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("hook", [Hook.TC_INGRESS, Hook.XDP])
@pytest.mark.parametrize("variant", CHAINS)
def test_every_chain_the_benchmark_links_decides_as_the_component(hook, variant):
    components = [Component(f"c{i}", asm.encode(component(hook)), frozenset({hook.chain_end_verdict}))
                  for i in range(8)]
    with linking_as(variant):
        chain = linker.link_chain(hook, components, counters="+counters" in variant)
    try:
        fd = chain.load()
    finally:
        chain.close()
    try:
        decides_as_the_component(hook, fd)
    finally:
        os.close(fd)
