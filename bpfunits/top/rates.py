"""Rates from two readings of every chain's counters: pure, so that the view only draws."""

from __future__ import annotations

from dataclasses import dataclass

from bpfunits.hooks import Hook
from bpfunits.linker.counters import ComponentCounts
from bpfunits.order.graph import HookKey

# What counts as a drop on each kind of hook.
DROPS = {Hook.XDP: ("drop", "aborted"), Hook.TC_INGRESS: ("shot",), Hook.TC_EGRESS: ("shot",)}

Reading = dict[HookKey, list[ComponentCounts]]  # per hook, its chain's counts in run order


@dataclass(frozen=True)
class Row:
    key: HookKey
    unit: str
    pps: float
    dps: float  # drops per second
    packets: int
    drops: int


def drops(key: HookKey, c: ComponentCounts) -> int:
    return sum(c.verdicts.get(key.hook.verdicts[name], 0) for name in DROPS[key.hook])


def rows(before: Reading, after: Reading, seconds: float) -> list[Row]:
    """One row per unit of every hook in `after`, busiest first (then by hook and run order); a
    unit new since `before` has no rate yet (0). Counters never go back while a unit stays on
    its hook, even across a relink, so the difference is the traffic in between."""
    out = []
    for key in sorted(after):
        earlier = {c.name: c for c in before.get(key, ())}
        for c in after[key]:
            old = earlier.get(c.name)
            pps = dps = 0.0
            if old is not None and seconds > 0:
                pps = max(0, c.entered - old.entered) / seconds
                dps = max(0, drops(key, c) - drops(key, old)) / seconds
            out.append(Row(key, c.name, pps, dps, c.entered, drops(key, c)))
    order = {id(r): i for i, r in enumerate(out)}
    return sorted(out, key=lambda r: (-r.pps, -r.dps, order[id(r)]))


def table(found: list[Row], width: int) -> list[str]:
    """The rows as text lines, at most `width` characters each."""
    head = ("INTERFACE", "HOOK", "UNIT", "PKTS/S", "DROPS/S", "PACKETS", "DROPS")
    lines = ["{:<16} {:<10} {:<24} {:>12} {:>12} {:>14} {:>14}".format(*head)]
    lines += [f"{r.key.interface:<16} {r.key.hook.value:<10} {r.unit:<24} {r.pps:>12.0f} {r.dps:>12.0f} "
              f"{r.packets:>14} {r.drops:>14}" for r in found]
    return [line[:width] for line in lines]
