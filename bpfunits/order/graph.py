"""Ordering the units of one (interface, hook) with networkx: Before/After edges, First/Last, cycles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar
from pathlib import Path
from collections.abc import Iterable

import networkx as nx

from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.hooks.events import EventHook
from bpfunits.units.diagnostics import Diagnostic, error
from bpfunits.units.model import Location, Position, Unit


class HookKey(NamedTuple):
    """One hook of one interface. A tuple: a node's thousands of them are made, hashed and
    sorted in every reconcile, which costs a frozen dataclass several times as much."""

    interface: str
    hook: Hook

    def __str__(self) -> str:
        return f"{self.interface} {self.hook.value}"


@dataclass(frozen=True)
class Edge:
    """`first` runs before `then`, because of `reason` written at `location`."""

    first: str
    then: str
    reason: str
    location: Location

    def __str__(self) -> str:
        return f"{self.first} -> {self.then}: {self.reason} ({self.location})"


@dataclass(frozen=True)
class Chain:
    key: HookKey
    units: tuple[Unit, ...]
    edges: tuple[Edge, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(u.name for u in self.units)


K = TypeVar("K", HookKey, EventHook)


class OrderError(BpfUnitsError, Generic[K]):
    """A hook whose units cannot be ordered; the hook gets no new chain (an event hook, no new
    order)."""

    def __init__(self, key: K, units: Iterable[str], message: str, locations: Iterable[Location]):
        self.key: K = key
        self.units = tuple(units)
        self.locations = tuple(locations)
        super().__init__(message)

    def diagnostic(self) -> Diagnostic:
        where = self.locations[0] if self.locations else Location(Path("-"))
        return error(str(self), where)


def order_hook(key: HookKey, units: Iterable[Unit]) -> Chain:
    """The hook's chain: every declared edge respected, ties broken by unit name."""
    return Chain(key, *order_units(key, units))


def order_units(key: K, units: Iterable[Unit]) -> tuple[tuple[Unit, ...], tuple[Edge, ...]]:
    """The units of one hook in order (every declared edge respected, ties broken by unit name),
    and the edges that ordered them."""
    by_name = {u.name: u for u in units}
    _check_positions(key, by_name)
    edges = _edges(by_name)
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(by_name))
    for edge in edges:
        graph.add_edge(edge.first, edge.then)
    try:
        order = list(nx.lexicographical_topological_sort(graph))
    except nx.NetworkXUnfeasible:
        raise _cycle_error(key, graph, edges) from None
    return tuple(by_name[n] for n in order), tuple(edges)


def _check_positions(key: K, units: dict[str, Unit]) -> None:
    for position in Position:
        holders = sorted(n for n, u in units.items() if u.position is position)
        if len(holders) > 1:
            where = [units[n].where("position") for n in holders]
            listed = ", ".join(f"{n} ({w})" for n, w in zip(holders, where, strict=True))
            both = "both" if len(holders) == 2 else "all"  # noqa: PLR2004 (English has a word for two)
            raise OrderError(key, holders, f"{key}: {listed} {both} want Position={position.value}", where)


def _edges(units: dict[str, Unit]) -> list[Edge]:
    """Declared edges between units present on this hook; references to absent units are ignored
    (systemd semantics: ordering applies only between units that are both there)."""
    edges = []
    for name in sorted(units):
        unit = units[name]
        edges += [Edge(name, o, f"{name} Before={o}", unit.where("before", o)) for o in unit.before if o in units]
        edges += [Edge(o, name, f"{name} After={o}", unit.where("after", o)) for o in unit.after if o in units]
        if unit.position is not None:
            where = unit.where("position")
            reason = f"{name} Position={unit.position.value}"
            others = [o for o in sorted(units) if o != name]
            if unit.position is Position.FIRST:
                edges += [Edge(name, o, reason, where) for o in others]
            else:
                edges += [Edge(o, name, reason, where) for o in others]
    return edges


def _cycle_error(key: K, graph: nx.DiGraph, edges: list[Edge]) -> OrderError[K]:
    cycle = [u for u, _ in nx.find_cycle(graph)]
    start = cycle.index(min(cycle))
    cycle = cycle[start:] + cycle[:start]
    steps = list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
    declared = [e for step in steps for e in edges if (e.first, e.then) == step]
    lines = [f"{key}: ordering cycle {' -> '.join(cycle + cycle[:1])}"]
    lines += [f"  {e}" for e in declared]
    return OrderError(key, cycle, "\n".join(lines), [e.location for e in declared])
