"""Loaded unit programs kept from one reconcile to the next, so that a unit whose files did not
change is never reloaded, re-verified or recompiled.

A program is determined by its unit's object (or source) bytes, defines, program name and hook,
and by the maps it binds: a map pinned in the unit's folder that is no longer the one the
program uses (replaced by another bpfunits process, or removed) makes it load again. The cache
is an object its owner (the daemon, or one CLI reconcile) passes to each reconcile; whatever a
reconcile did not ask for is released at its end: its unit went, changed or no longer loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bpfunits.declare.typed import Typed, refuse_borrowed, typed_declarations
from bpfunits.hooks import Hook
from bpfunits.hooks.events import EventHook
from bpfunits.load import mappins
from bpfunits.state.bpffs import StateRoot
from bpfunits.load.load import LoadError, ObjectFile, SharedMap, load_object_program, read_object
from bpfunits.load.program import LoadedProgram, MapRef
from bpfunits.linker.manifest import ManifestEntry, bind_event_manifest
from bpfunits.units.model import Unit
from bpfunits.untrusted import FilePolicy


@dataclass(frozen=True)
class ProgramKey:
    """What a unit's loaded program is made of, but for its maps."""

    root: str  # the state root, where the unit's maps are pinned
    unit: str
    sha256: str  # of the object's or source's bytes
    source: bool
    defines: tuple[tuple[str, str], ...]
    name: str | None
    hook: Hook | EventHook
    globals: tuple[tuple[str, str], ...] = ()  # Global=: set before load, so a change is a new program
    shared: tuple[tuple[str, str, int], ...] = ()  # maps of other units it uses: (name, owner, id)


@dataclass
class CachedProgram:
    key: ProgramKey
    program: LoadedProgram
    pins: dict[str, int | None]  # per map that holds state: the map pinned for it when last used
    stack_depths: tuple[int, ...] | None = None  # the verifier's, per function; set by the first link
    # The unit as last asked for, and its declarations typed by the object's BTF (entries may change
    # without the program changing).
    unit: Unit | None = None
    typed: Typed | None = None

    def own_maps(self) -> list[MapRef]:
        """The program's maps but those taken from other units (MapsFrom=)."""
        shared = {name for name, _, _ in self.key.shared}
        return [ref for name, ref in self.program.maps.items() if name not in shared]

    def binds_pinned_maps(self, pins: dict[str, int | None]) -> bool:
        """Whether each pin holds what it held when last used, or this program's own map (a
        commit since)."""
        ours = {name: ref.id for name, ref in self.program.maps.items()}
        return all(now in (self.pins.get(name), ours.get(name)) for name, now in pins.items())


@dataclass
class ProgramCache:
    """Loaded programs by unit name; owns them (and their fds) until they are dropped or close()."""

    _entries: dict[str, CachedProgram] = field(default_factory=dict)

    def get(self, unit: Unit, root: StateRoot, policy: FilePolicy,
            shared: dict[str, SharedMap] | None = None) -> CachedProgram:
        """The unit's program: the cached one if nothing that determines it changed, else newly
        loaded (LoadError and the like when it does not load; then it is not kept). `shared`:
        the maps of other units it uses (MapsFrom=), by name; other maps there make it another
        program."""
        shared = shared or {}
        data = unit_program_file(unit, policy)  # read each time: a changed file is a new key
        typed = typed_declarations(unit, data.data)
        refuse_borrowed(unit, {name: m.owner for name, m in shared.items()})
        key = ProgramKey(str(root.path), unit.name, data.sha256, unit.program.source is not None,
                         unit.program.defines, unit.program.name, unit.hook, unit.program.globals,
                         tuple(sorted((n, m.owner, m.id) for n, m in shared.items())))
        cached = self._entries.get(unit.name)
        if cached is not None and cached.key == key:
            pins = mappins.pinned_ids(root, unit.name, cached.own_maps())
            if cached.binds_pinned_maps(pins):
                cached.pins, cached.unit, cached.typed = pins, unit, typed
                return cached
        self.drop(unit.name)
        program = load_unit_program(unit, root, policy, data, shared, typed)
        entry = CachedProgram(key, program, {}, unit=unit, typed=typed)
        try:
            if isinstance(unit.hook, EventHook):
                maps = tuple(sorted((name, ref.id) for name, ref in program.maps.items()))
                bind_event_manifest(program.fd, ManifestEntry(unit.name, program.sha256, program.tag, (), "alone",
                                                              maps, unit.program.globals),
                                    unit.hook.value, str(root.path))
            entry.pins = mappins.pinned_ids(root, unit.name, entry.own_maps())
        except BaseException:
            program.close()
            raise
        self._entries[unit.name] = entry
        return entry

    def cached(self, unit: str) -> CachedProgram | None:
        return self._entries.get(unit)

    def drop(self, unit: str) -> None:
        cached = self._entries.pop(unit, None)
        if cached is not None:
            cached.program.close()

    def sweep(self, keep: set[str]) -> None:
        """Release the programs of every unit but those of `keep`."""
        for unit in set(self._entries) - keep:
            self.drop(unit)

    def units(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def program(self, unit: str) -> LoadedProgram:
        return self._entries[unit].program

    def close(self) -> None:
        for unit in list(self._entries):
            self.drop(unit)


def unit_program_file(unit: Unit, policy: FilePolicy = FilePolicy()) -> ObjectFile:
    """The unit's object or source file, read once under `policy` and checked against SHA256=:
    what its digest says is what loads."""
    label = f"unit {unit.name}"
    path = unit.program.source if unit.program.source is not None else unit.program.object
    if path is None:
        raise LoadError(f"{label}: names neither an object nor a source file")
    return read_object(Path(path), label, unit.program.sha256, policy)


def load_unit_program(
    unit: Unit, root: StateRoot, policy: FilePolicy = FilePolicy(), data: ObjectFile | None = None,
    shared: dict[str, SharedMap] | None = None,
    typed: Typed | None = None,
) -> LoadedProgram:
    """Load a unit's program: an ELF object with libbpf, or C source with bcc. `policy`: what
    its object or source file must be to be read; `data`: that file, already read."""
    label = f"unit {unit.name}"
    data = data or unit_program_file(unit, policy)
    if unit.program.source is not None:
        from bpfunits.load.bcc import load_source_program  # bcc is heavy; only Source= needs it

        assert isinstance(unit.hook, Hook)  # units.build refuses Source= on event hooks

        return load_source_program(
            unit.program.source,
            unit.hook,
            name=unit.program.name,
            defines=unit.program.defines,
            label=label,
            pin_root=root.unit_path(unit.name),
            data=data,
        )
    assert unit.program.object is not None  # unit_program_file refused a unit naming neither
    typed = typed or typed_declarations(unit, data.data)
    return load_object_program(
        unit.program.object,
        unit.hook,
        root.unit_path(unit.name),
        name=unit.program.name,
        label=label,
        persist_maps=True,
        data=data,
        shared=shared,
        globals_=tuple((g.datasec, g.offset, g.data) for g in typed.globals),
    )
