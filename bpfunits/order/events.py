"""The order of the units on each event hook that has one: cgroup hooks, where the kernel places
a link before or after another (Linux 6.16+). The same After=/Before=/Position= relations as a
chain's, so the same graph orders them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bpfunits.hooks.events import EventHook
from bpfunits.order.graph import OrderError, order_units
from bpfunits.units.model import Unit


@dataclass
class EventOrdering:
    orders: dict[EventHook, tuple[Unit, ...]] = field(default_factory=dict)  # per hook, in run order
    errors: list[OrderError[EventHook]] = field(default_factory=list)  # a hook here has no order in `orders`


def order_events(units: Iterable[Unit]) -> EventOrdering:
    """Order the units of every orderable event hook; a hook that cannot be ordered (a cycle,
    two units wanting Position=first) is reported and the others are unaffected."""
    placed: dict[EventHook, list[Unit]] = {}
    for unit in units:
        if isinstance(unit.hook, EventHook) and unit.hook.orderable:
            placed.setdefault(unit.hook, []).append(unit)
    result = EventOrdering()
    for hook in sorted(placed, key=lambda h: h.value):
        try:
            result.orders[hook] = order_units(hook, placed[hook])[0]
        except OrderError as exc:
            result.errors.append(exc)
    return result


def out_of_order(declared: Sequence[str], running: Sequence[str]) -> set[str]:
    """The fewest units of `running` (in the kernel's run order) to move so that the others run
    in `declared` order: all but a longest sequence of them already in that order."""
    rank = {name: i for i, name in enumerate(declared)}
    seq = [name for name in running if name in rank]
    longest: list[list[str]] = []  # per position, the longest in-order sequence ending there
    for i, name in enumerate(seq):
        before = [longest[j] for j in range(i) if rank[seq[j]] < rank[name]]
        best: list[str] = max(before, key=len, default=[])
        longest.append([*best, name])  # O(n²): a hook holds a handful
    kept: list[str] = max(longest, key=len, default=[])
    return set(seq) - set(kept)


def neighbour(declared: Sequence[str], name: str, placed: Mapping[str, int]) -> tuple[bool, int]:
    """Where `name` goes among the units in place (`placed`: their link ids): right after the
    nearest one declared before it, else right before the nearest one declared after it, else
    last. As (before, link id), link id 0 for none."""
    i = declared.index(name)
    for other in reversed(declared[:i]):
        if other in placed:
            return False, placed[other]
    for other in declared[i + 1:]:
        if other in placed:
            return True, placed[other]
    return False, 0
