"""A unit's declarations (Global=, [Map] Entry= and Policy=) checked against its object's BTF and
encoded: the bytes a load writes into the object's data sections, and the entries apply writes."""

from __future__ import annotations

from dataclasses import dataclass

from bpfunits.btf.objects import ObjectBtf, object_btf
from bpfunits.btf.types import BtfError
from bpfunits.btf.elf import ElfError
from bpfunits.declare.syntax import parse_value, render
from bpfunits.declare.values import PREFIX_HINT, BadValue, decode, encode
from bpfunits.errors import BpfUnitsError
from bpfunits.units.diagnostics import Diagnostic, error
from bpfunits.units.keys import suggest
from bpfunits.units.model import MapEntry, Unit


@dataclass(frozen=True)
class GlobalWrite:
    name: str
    section: str
    datasec: int  # the section's BTF DATASEC id: libbpf's internal map for it has it as value type
    offset: int
    data: bytes


@dataclass(frozen=True)
class EntryWrite:
    entry: MapEntry
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Typed:
    globals: tuple[GlobalWrite, ...]
    entries: tuple[EntryWrite, ...]
    obj: ObjectBtf | None  # None when the unit declares nothing
    compiled: tuple[tuple[str, str], ...] = ()  # every global's value in the object, as declarations spell it

    def show_key(self, map_name: str, key: bytes, like: str | None = None) -> str:
        """A key as declarations spell it (an LPM-trie key as a prefix)."""
        assert self.obj is not None
        m = self.obj.maps[map_name]
        hint = parse_value(like) if like is not None else (PREFIX_HINT if m.lpm else None)
        return render(decode(self.obj.btf, m.key, key, hint))

    def show_value(self, map_name: str, value: bytes, like: str | None = None) -> str:
        assert self.obj is not None
        m = self.obj.maps[map_name]
        return render(decode(self.obj.btf, m.value, value, parse_value(like) if like is not None else None))


class DeclarationError(BpfUnitsError):
    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


def declares(unit: Unit) -> bool:
    return bool(unit.program.globals or unit.map_entries or unit.exact_maps)


def typed_declarations(unit: Unit, data: bytes) -> Typed:
    """The unit's declarations encoded by the BTF of its object's bytes `data`; DeclarationError naming
    each one that does not fit, at its file and line."""
    if not declares(unit):
        return Typed((), (), None)
    if unit.program.object is None:
        key = "globals" if unit.program.globals else "entries"
        raise DeclarationError([error("Global= and [Map] entries need Object= (their types come from its BTF)",
                                      unit.where(key), unit.name, "Global=" if key == "globals" else "Entry=")])
    try:
        obj = object_btf(data)
    except (BtfError, ElfError) as e:
        raise DeclarationError([error(f"{unit.program.object}: {e}: its globals and maps cannot be typed",
                                      unit.where("object"), unit.name, "Object=")]) from None
    problems: list[Diagnostic] = []
    globals_: list[GlobalWrite] = []
    for name, text in unit.program.globals:
        where = unit.where("global", name)
        g = obj.globals.get(name)
        if g is None:
            listing = ", ".join(obj.globals) or "none"
            problems.append(error(f"Global={name}: {unit.program.object} has no global variable {name!r}"
                                  f"{suggest(name, list(obj.globals))}; its globals: {listing}",
                                  where, unit.name, "Global="))
            continue
        try:
            raw = encode(obj.btf, g.type, parse_value(text))
        except BadValue as e:
            problems.append(error(f"Global={name}={text}: {e} (the variable is {obj.btf.name(g.type)})",
                                  where, unit.name, "Global="))
            continue
        globals_.append(GlobalWrite(name, g.section, obj.datasecs[g.section], g.offset, raw))
    entries: list[EntryWrite] = []
    maps_listing = ", ".join(obj.maps) or "none"
    for entry in unit.map_entries:
        where = unit.where("entry", f"{entry.map} {entry.key}")
        label = f"Entry={entry.map} {entry.key} {entry.value}"
        m = obj.maps.get(entry.map)
        if m is None:
            problems.append(error(f"{label}: {unit.program.object} has no map {entry.map!r}"
                                  f"{suggest(entry.map, list(obj.maps))}; its maps: {maps_listing}",
                                  where, unit.name, "Entry="))
            continue
        try:
            raw_key = encode(obj.btf, m.key, parse_value(entry.key), "key")
            raw_value = encode(obj.btf, m.value, parse_value(entry.value), "value")
        except BadValue as e:
            problems.append(error(f"{label}: {e}", where, unit.name, "Entry="))
            continue
        entries.append(EntryWrite(entry, raw_key, raw_value))
    for name in sorted(unit.exact_maps - set(obj.maps)):
        problems.append(error(f"Policy={name} exact: {unit.program.object} has no map {name!r}"
                              f"{suggest(name, list(obj.maps))}; its maps: {maps_listing}",
                              unit.where("policy", name), unit.name, "Policy="))
    if problems:
        raise DeclarationError(problems)
    return Typed(tuple(globals_), tuple(entries), obj, _compiled(obj))


def _compiled(obj: ObjectBtf) -> tuple[tuple[str, str], ...]:
    found = []
    for g in obj.globals.values():
        image = obj.images.get(g.section, b"")
        raw = image[g.offset: g.offset + obj.btf.size(g.type)]
        if len(raw) == obj.btf.size(g.type):
            found.append((g.name, render(decode(obj.btf, g.type, raw))))
    return tuple(found)


def refuse_borrowed(unit: Unit, owners: dict[str, str]) -> None:
    """DeclarationError if the unit declares entries (Entry=, Policy=) in a map it takes from another
    unit (MapsFrom=, `owners`: map name to its unit): a map's entries are declared by its owner
    alone, so that no two units declare them differently."""
    problems = [error(f"Entry={e.map} {e.key} {e.value}: map {e.map} is unit {owners[e.map]}'s (MapsFrom=): "
                      f"declare its entries in unit {owners[e.map]}",
                      unit.where("entry", f"{e.map} {e.key}"), unit.name, "Entry=")
                for e in unit.map_entries if e.map in owners]
    problems += [error(f"Policy={name} exact: map {name} is unit {owners[name]}'s (MapsFrom=): declare its policy "
                       f"in unit {owners[name]}", unit.where("policy", name), unit.name, "Policy=")
                 for name in sorted(unit.exact_maps & owners.keys())]
    if problems:
        raise DeclarationError(problems)


def check_declarations(unit: Unit, data: bytes) -> list[Diagnostic]:
    try:
        typed_declarations(unit, data)
    except DeclarationError as e:
        return e.diagnostics
    return []
