"""Typed units, as every later stage (ordering, loading, linking, planning) sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from bpfunits.hooks import Hook
from bpfunits.hooks.events import EventHook


@dataclass(frozen=True, order=True)
class Location:
    """Where something was written: a file and, when known, a 1-based line."""

    path: Path
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)


class Position(str, Enum):
    FIRST = "first"
    LAST = "last"


@dataclass(frozen=True)
class Program:
    """The one BPF program a unit runs: a function in an ELF object, or C source for bcc."""

    object: Path | None = None
    source: Path | None = None
    name: str | None = None
    sha256: str | None = None
    defines: tuple[tuple[str, str], ...] = ()
    # Global=NAME=VALUE: (name, value text), last assignment per name; values typed by the object's BTF.
    globals: tuple[tuple[str, str], ...] = ()
    maps_from: tuple[str, ...] = ()  # units whose maps this program uses, first match by name wins


@dataclass(frozen=True)
class MapEntry:
    """An entry a unit declares in one of its maps ([Map] Entry=MAP KEY VALUE), key and value as text."""

    map: str
    key: str
    value: str


@dataclass(frozen=True)
class MapMetric:
    """A value of one of the unit's maps that the daemon exports ([Metrics] Map=)."""

    map: str
    key: int
    kind: str | None  # counter | gauge; None: from the value's BTF type (unsigned: counter)


@dataclass(frozen=True)
class Unit:
    name: str
    path: Path
    hook: Hook | EventHook  # an event hook runs the unit's program alone, on no interface
    program: Program
    interfaces: tuple[str, ...]
    proceed_on: frozenset[str]
    description: str = ""
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    position: Position | None = None
    dropins: tuple[Path, ...] = ()
    metrics: tuple[MapMetric, ...] = ()
    map_entries: tuple[MapEntry, ...] = ()
    exact_maps: frozenset[str] = frozenset()  # [Map] Policy=MAP exact; other maps merge
    # Where each key, and each item of a list key ("after:scrubber"), was set last.
    locations: dict[str, Location] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def where(self, key: str, item: str | None = None) -> Location:
        """The file and line that set `key` (or one item of a list key), for messages."""
        if item is not None and f"{key}:{item}" in self.locations:
            return self.locations[f"{key}:{item}"]
        return self.locations.get(key, Location(self.path))

    @property
    def proceed_codes(self) -> frozenset[int]:
        return frozenset(self.hook.verdicts[v] for v in self.proceed_on) if isinstance(self.hook, Hook) else frozenset()

    @property
    def chained(self) -> bool:
        """Whether the unit's program runs in a chain on interfaces' hooks (else on an event hook)."""
        return isinstance(self.hook, Hook)
