"""All chains of a host: units expanded over interfaces, one ordered chain per (interface, hook)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bpfunits.hooks import Hook
from bpfunits.hooks.probe import CGROUP_MPROG, Features
from bpfunits.order import interfaces as ifsel
from bpfunits.order.graph import Chain, HookKey, OrderError, order_hook
from bpfunits.units.diagnostics import Diagnostic, warning
from bpfunits.units.model import Unit


@dataclass
class Ordering:
    chains: dict[HookKey, Chain] = field(default_factory=dict)
    errors: list[OrderError[HookKey]] = field(default_factory=list)


def expand(units: Iterable[Unit], available: Iterable[str]) -> dict[HookKey, list[Unit]]:
    """Which units sit on each (interface, hook)."""
    available = list(available)
    placed: dict[HookKey, list[Unit]] = {}
    for unit in units:
        if not isinstance(unit.hook, Hook):
            continue  # an event unit: on no interface, in no chain
        for name in ifsel.select(unit.interfaces, available):
            placed.setdefault(HookKey(name, unit.hook), []).append(unit)
    return placed


def order_all(units: Iterable[Unit], available: Iterable[str]) -> Ordering:
    """Order every hook; a hook that cannot be ordered is reported and the others are unaffected."""
    result = Ordering()
    placed = expand(units, available)
    # Interfaces that a glob gives the same units order alike: sort each set once.
    ordered: dict[tuple[Hook, tuple[Unit, ...]], Chain] = {}
    for key in sorted(placed, key=lambda k: (k.interface, k.hook.value)):
        same = (key.hook, tuple(placed[key]))
        try:
            if same in ordered:
                result.chains[key] = Chain(key, ordered[same].units, ordered[same].edges)
            else:
                result.chains[key] = ordered[same] = order_hook(key, placed[key])
        except OrderError as exc:
            result.errors.append(exc)  # raised again for each such key, whose name it carries
    return result


def unknown_references(units: dict[str, Unit], masked: Iterable[str] = ()) -> list[Diagnostic]:
    """Warnings for Before=/After= naming a unit that exists nowhere (or is masked)."""
    masked = set(masked)
    found = []
    for unit in units.values():
        for key, names in (("before", unit.before), ("after", unit.after)):
            for other in names:
                if other in units:
                    continue
                why = "is masked" if other in masked else "exists nowhere"
                label = f"{key.capitalize()}={other}"
                found.append(warning(f"{label}: unit {other} {why}", unit.where(key, other), unit.name, label))
    return found


def ignored_order(units: Iterable[Unit], features: Features | None) -> list[Diagnostic]:
    """Warnings for ordering keys on event hooks whose programs run in no order bpfunits sets:
    the keys are ignored there. Cgroup hooks are ordered where the kernel can place their links
    (`features`, None when unknown: no warning for them then)."""
    found = []
    for unit in units:
        if isinstance(unit.hook, Hook):
            continue
        if unit.hook.orderable and (features is None or features.has(CGROUP_MPROG)):
            continue
        if unit.hook.orderable:
            assert features is not None
            why = f"{features.missing(CGROUP_MPROG)}; until then cgroup programs run in attach order"
        else:
            why = f"programs on the {unit.hook.kind.value} hook run alone, in no order bpfunits sets"
        set_keys = [(k, n) for k, n, v in (("before", "Before", unit.before), ("after", "After", unit.after),
                                          ("position", "Position", unit.position)) if v]
        for key, name in set_keys:
            found.append(warning(f"{name}= is ignored: {why}", unit.where(key), unit.name, f"{name}="))
    return found


def verification_interfaces(units: Iterable[Unit], host: Iterable[str]) -> list[str]:
    """Interfaces to order against when verifying: the host's, plus every name a unit spells out,
    so conflicts on interfaces this machine lacks (a control node, a CI runner) are still found."""
    names = set(host)
    for unit in units:
        names |= ifsel.literal_names(unit.interfaces)
    return sorted(names)
