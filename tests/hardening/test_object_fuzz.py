"""Issue 11, proof for objects: mutated ELF objects (byte flips, sections cut short, bad relocations,
bad BTF, truncation) through the real loading path, libbpf's worker included: every outcome is a
program or one error of bpfunits' own (no traceback), the test process never crashes, and no case
takes longer than its bound. A failed load leaves no pin behind."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfunits.errors import BpfUnitsError
from bpfunits.btf.objects import object_btf
from bpfunits.hooks import Hook
from bpfunits.load.load import load_object_program, open_object_facts, select_program
from tests.hardening import objmutate
from tests.hardening.bounded import within

BASES = ("examples/filter.bpf.o", "examples/ratelimit.bpf.o", "tailcall.bpf.o", "globals.bpf.o")
PER_CASE = 15.0  # seconds: the worker's own bounds are 10 s to open and 120 s to load

fractions = st.floats(0, 1, exclude_max=True)
mutations = st.lists(
    st.one_of(
        st.builds(objmutate.Flip, st.sampled_from(objmutate.KINDS), fractions, st.integers(0, 255)),
        st.builds(objmutate.CutSection, st.sampled_from(objmutate.KINDS[1:]), st.sampled_from([0.0, 0.5, 0.9, 1.5, 1e3])),
        st.builds(objmutate.BadRelocation, st.integers(0, 63), st.integers(0, (1 << 32) - 1), st.integers(0, 1 << 20)),
        st.builds(objmutate.Truncate, fractions),
    ),
    min_size=1,
    max_size=4,
)


def write_mutant(folder: Path, base: Path, mutation_list: list) -> Path:
    path = folder / base.name
    path.write_bytes(objmutate.mutate(base.read_bytes(), mutation_list))
    return path


@pytest.mark.kernel
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(BASES), mutation_list=mutations)
def test_object_fuzz_load_is_a_program_or_an_error(tmp_path, bpffs_root, bpf_objects, base, mutation_list):
    path = write_mutant(tmp_path, bpf_objects / base, mutation_list)
    folder = bpffs_root.unit_path("fuzz")
    with within(PER_CASE):
        try:
            load_object_program(path, Hook.XDP, folder, label="unit fuzz", persist_maps=True).close()
        except BpfUnitsError as exc:
            assert "unit fuzz" in str(exc)
            assert not folder.exists()


def test_object_fuzz_seeded_mutants_open_or_are_errors(tmp_path, bpf_objects):
    """The mutator that found the crashers (3 to 7 in 2000 copies of filter.bpf.o), replayed: no kernel."""
    base = bpf_objects / "examples" / "filter.bpf.o"
    for seed in range(400):
        path = write_mutant(tmp_path, base, objmutate.seeded(seed))
        with within(PER_CASE):
            try:
                facts = open_object_facts(path, path.read_bytes(), "unit fuzz")
                select_program(facts.programs, None, Hook.XDP, path, "unit fuzz")
            except BpfUnitsError as exc:
                assert str(exc).startswith("unit fuzz: "), (seed, exc)


@given(base=st.sampled_from(BASES + ("declared_shapes.bpf.o",)), mutation_list=mutations)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_object_fuzz_btf_reader_describes_or_refuses(bpf_objects, base, mutation_list):
    """The BTF and ELF reader that types Global= and Entry= (no libbpf, no root: verify runs it on
    any object a unit names): a description or one error of its own, quickly."""
    data = objmutate.mutate((bpf_objects / base).read_bytes(), mutation_list)
    with within(PER_CASE), contextlib.suppress(BpfUnitsError):
        object_btf(data)
