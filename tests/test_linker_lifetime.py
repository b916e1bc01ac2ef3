"""A component's instructions hold its program's map fds, which close with the program: once it is
closed, they can be neither linked nor loaded (pure: no program is loaded here)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bpfunits.hooks import Hook
from bpfunits.linker import asm
from bpfunits.linker.component import component_of
from bpfunits.linker.linker import link_chain
from bpfunits.load.program import LoadedProgram, ProgramClosed

RET_PASS = asm.encode([asm.mov64_imm(asm.R0, 2), asm.exit_()])


def program() -> LoadedProgram:
    # As a load leaves it, but for fds: it owns none here, so close() closes nothing.
    return LoadedProgram(-1, "pass", Hook.XDP, 6, 7, "", {}, "", RET_PASS, ())


def component(loaded: LoadedProgram):
    # The stack depths a load would have found, so that linking asks no verifier.
    return replace(component_of("u", loaded, frozenset({2})), stack_depths=(0,))


def test_a_closed_programs_instructions_are_refused():
    loaded = program()
    assert loaded.insns == RET_PASS
    loaded.close()
    with pytest.raises(ProgramClosed, match="program 'pass' .id 7. was closed"):
        loaded.insns  # noqa: B018


def test_a_component_of_a_closed_program_does_not_link():
    loaded = program()
    part = component(loaded)
    loaded.close()
    with pytest.raises(ProgramClosed):
        link_chain(Hook.XDP, [part])


def test_a_chain_linked_from_a_program_closed_since_does_not_load():
    loaded = program()
    with link_chain(Hook.XDP, [component(loaded)]) as chain:
        loaded.close()
        with pytest.raises(ProgramClosed, match="a chain must be linked and loaded while the programs"):
            chain.load()
