"""Declared map entries against a unit's maps in the kernel: the differences (what `plan` shows, what
`status --maps` reports) and their repair (apply, and the daemon at each reconcile).

`merge` maps: each declared key must hold its declared value; other keys are the program's own state.
`exact` maps: also, every key not declared is removed. Per-CPU maps hold the value on every CPU."""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

from bpfunits.declare.syntax import Value, parse_value, render
from bpfunits.declare.typed import Typed
from bpfunits.load.program import MapRef
from bpfunits.units.model import MapEntry
from bpfunits.sys import bpf

log = logging.getLogger("bpfunits.entries")


class Change(str, Enum):
    ADD = "+"  # the key is missing
    REMOVE = "-"  # an exact map holds a key not declared
    UPDATE = "~"  # the key holds another value (on some CPU)


@dataclass(frozen=True)
class EntryDiff:
    unit: str
    map: str
    change: Change
    key: str
    value: str  # the declared value; for a removal, the value found
    found: str | None = None  # for an update, the value found
    raw_key: bytes = b""
    raw_value: bytes = b""
    # For an update, what differs, member by member: (path, found, declared), as `config[0].rate 5 -> 50`.
    leaves: tuple[tuple[str, str, str], ...] = ()

    def lines(self) -> list[str]:
        if self.change is Change.UPDATE:
            return [f"~ {self.map}[{self.key}]{path} {old} -> {new}" for path, old, new in self.leaves]
        return [f"{self.change.value} {self.map} {self.key} = {self.value}"]

    def __str__(self) -> str:
        return "; ".join(self.lines())

    def to_json(self) -> dict:
        return {"unit": self.unit, "map": self.map, "change": self.change.value, "key": self.key,
                "value": self.value, "found": self.found,
                "members": [{"path": p, "found": f, "value": v} for p, f, v in self.leaves]}


def _values(ref: MapRef, key: bytes, per_cpu: bool) -> list[bytes] | None:
    if per_cpu:
        return bpf.map_lookup_percpu(ref.fd, key, ref.value_size)
    value = bpf.map_lookup(ref.fd, key, ref.value_size)
    return None if value is None else [value]


def differences(unit: str, typed: Typed, maps: Mapping[str, MapRef], exact: frozenset[str]) -> list[EntryDiff]:
    """What the kernel's maps lack of the declarations; maps the program does not hold are skipped."""
    if typed.obj is None:
        return []
    found: list[EntryDiff] = []
    declared_keys: dict[str, set[bytes]] = {}
    for write in typed.entries:
        e = write.entry
        ref = maps.get(e.map)
        if ref is None:
            continue
        declared_keys.setdefault(e.map, set()).add(write.key)
        values = _values(ref, write.key, typed.obj.maps[e.map].per_cpu)
        if values is None:
            found.append(EntryDiff(unit, e.map, Change.ADD, e.key, e.value, None, write.key, write.value))
            continue
        wrong = next((v for v in values if v != write.value), None)
        if wrong is not None:
            shown = typed.show_value(e.map, wrong, e.value)
            wanted = typed.show_value(e.map, write.value, e.value)  # with the members left out, as zeros
            leaves = tuple(leaf_changes(parse_value(shown), parse_value(wanted))) or (("", shown, wanted),)
            found.append(EntryDiff(unit, e.map, Change.UPDATE, e.key, e.value, shown, write.key, write.value,
                                   leaves))
    for name in sorted(exact):
        ref = maps.get(name)
        if ref is None:
            continue
        ours = declared_keys.get(name, set())
        for key in bpf.map_keys(ref.fd, ref.key_size):
            if key in ours:
                continue
            values = _values(ref, key, typed.obj.maps[name].per_cpu)
            if values is None:
                continue  # gone meanwhile
            found.append(EntryDiff(unit, name, Change.REMOVE, typed.show_key(name, key),
                                   typed.show_value(name, values[0]), None, key))
    return found


def leaf_changes(found: Value, wanted: Value, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(path, found, wanted) for each member or item that differs, down to where the shapes part."""
    if isinstance(found, dict) and isinstance(wanted, dict) and found.keys() == wanted.keys():
        for name in wanted:
            yield from leaf_changes(found[name], wanted[name], f"{path}.{name}")
    elif isinstance(found, list) and isinstance(wanted, list) and len(found) == len(wanted):
        for i, (f, w) in enumerate(zip(found, wanted, strict=True)):
            yield from leaf_changes(f, w, f"{path}[{i}]")
    elif found != wanted:
        yield path, render(found), render(wanted)


def repair(diffs: list[EntryDiff], maps: Mapping[str, MapRef], per_cpu: frozenset[str]) -> None:
    """Write the declared entries and remove the undeclared ones of exact maps (logged, one line each)."""
    for d in diffs:
        ref = maps[d.map]
        if d.change is Change.REMOVE:
            try:
                bpf.map_delete(ref.fd, d.raw_key)
            except bpf.BpfError as e:
                if e.errno != errno.ENOENT:  # gone meanwhile
                    raise
        else:
            value = d.raw_value
            if d.map in per_cpu:
                stride = (ref.value_size + 7) & ~7
                value = (value + bytes(stride - len(value))) * bpf.possible_cpus()
            bpf.map_update(ref.fd, d.raw_key, value)
        for line in d.lines():
            log.info("unit %s: map entry %s", d.unit, line)


@dataclass(frozen=True)
class EntryStatus:
    """A declared entry, or an undeclared one of an exact map, as `status --maps` shows it."""

    unit: str
    map: str
    key: str
    value: str
    state: str  # ok, missing, differs, undeclared
    found: str | None = None

    def to_json(self) -> dict:
        return {"unit": self.unit, "map": self.map, "key": self.key, "value": self.value, "state": self.state,
                "found": self.found}


def entry_status(declared: list[tuple[str, MapEntry]], diffs: list[EntryDiff]) -> list[EntryStatus]:
    by_key = {(d.unit, d.map, d.key): d for d in diffs}
    states = {Change.ADD: "missing", Change.UPDATE: "differs"}
    shown = []
    for unit, e in declared:
        d = by_key.get((unit, e.map, e.key))
        shown.append(EntryStatus(unit, e.map, e.key, e.value, states[d.change] if d else "ok", d.found if d else None))
    shown += [EntryStatus(d.unit, d.map, d.key, d.value, "undeclared") for d in diffs if d.change is Change.REMOVE]
    return sorted(shown, key=lambda s: (s.unit, s.map, s.key))
