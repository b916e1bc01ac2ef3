"""What `verify` learns of each unit's program file, as diagnostics at the line of the key to fix.

Without root and without the kernel: the file is read as a load reads it (regular, size, strict
permissions, SHA256=), an object is opened by libbpf in a worker (a malformed one is an error of
its unit), the program is chosen as a load chooses it (Name=, or the one program for the hook) and
checked against the hook (section, BTF context type), and its maps are counted against what one
chain may hold. With `trial_load`, the kernel's verifier runs on it too (root only), nothing pinned.
"""

from __future__ import annotations

from collections.abc import Callable

from bpfunits.declare.typed import check_declarations, typed_declarations
from bpfunits.hooks import Hook
from bpfunits.load.load import (
    ChecksumMismatch,
    LoadError,
    ProgramNotFound,
    WrongProgramType,
    load_object_program,
    open_object_facts,
    read_object,
    select_program,
)
from bpfunits.linker.linker import MAX_MAPS
from bpfunits.units.diagnostics import Diagnostic, error, warning
from bpfunits.units.model import Unit
from bpfunits.untrusted import FilePolicy

# What a chain adds of its own: the counters map and the manifest.
OWN_MAPS = 2
_INI = {"object": "Object=", "source": "Source=", "name": "Name=", "sha256": "SHA256="}


def check_program(unit: Unit, policy: FilePolicy, *, trial_load: bool = False) -> list[Diagnostic]:
    """The unit's program-file errors and warnings (none: it will load as far as can be told)."""
    label = f"unit {unit.name}"
    program = unit.program
    file_key = "object" if program.object is not None else "source"
    path = program.object or program.source
    if path is None:
        return []  # the unit checks already demand one of the two

    def at(key: str, exc: LoadError) -> list[Diagnostic]:
        return [error(str(exc).removeprefix(f"{label}: "), unit.where(key), unit.name, _INI[key])]

    try:
        data = read_object(path, label, program.sha256, policy).data
    except ChecksumMismatch as exc:
        return at("sha256", exc)
    except LoadError as exc:
        return at(file_key, exc)
    declared = check_declarations(unit, data)
    if program.object is None:
        return declared + (_trial(unit, policy, at) if trial_load else [])  # bcc alone can read a source
    try:
        facts = open_object_facts(path, data, label)
        select_program(facts.programs, program.name, unit.hook, path, label)
    except (ProgramNotFound, WrongProgramType) as exc:
        return at("name" if program.name is not None else "object", exc)
    except LoadError as exc:
        return at("object", exc)
    limit = MAX_MAPS - OWN_MAPS
    if len(facts.maps) > limit:
        many = (f"{path} defines {len(facts.maps)} maps, and a chain holds at most {limit} of its units' "
                f"({MAX_MAPS} per program, less bpfunits' own {OWN_MAPS}): it fits only if the program uses fewer")
        return [warning(many, unit.where("object"), unit.name, _INI["object"]), *declared]
    if declared or not trial_load:
        return declared
    # The verifier sees the declared globals: .rodata ones decide which branches it prunes.
    globals_ = tuple((g.datasec, g.offset, g.data) for g in typed_declarations(unit, data).globals)
    return _trial(unit, policy, at, globals_)


def _trial(unit: Unit, policy: FilePolicy, at: Callable[[str, LoadError], list[Diagnostic]],
           globals_: tuple[tuple[int, int, bytes], ...] = ()) -> list[Diagnostic]:
    """Load the program and drop it at once: the verifier's word, nothing pinned."""
    program, label = unit.program, f"unit {unit.name}"
    try:
        if program.source is not None:
            from bpfunits.load.bcc import load_source_program  # bcc is heavy; only Source= needs it

            assert isinstance(unit.hook, Hook)  # units.build refuses Source= on event hooks

            load_source_program(program.source, unit.hook, name=program.name, defines=program.defines,
                                sha256=program.sha256, label=label, policy=policy).close()
        else:
            assert program.object is not None  # units.build refuses a unit naming neither
            load_object_program(program.object, unit.hook, None, name=program.name, sha256=program.sha256,
                                label=label, policy=policy, globals_=globals_).close()
    except LoadError as exc:
        return at("object" if program.object is not None else "source", exc)
    return []
