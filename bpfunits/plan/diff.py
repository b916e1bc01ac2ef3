"""Per hook: desired against observed gives one action and the reasons for it."""

from __future__ import annotations

from difflib import SequenceMatcher
from collections.abc import Iterable

from bpfunits.hooks import Hook
from bpfunits.order.graph import HookKey
from bpfunits.plan.model import Action, ChainMember, Desired, HookPlan, Observed


def plan_hook(key: HookKey, desired: Desired | None, observed: Observed | None) -> HookPlan:
    want = desired.chain if desired else None
    have = observed.chain if observed else None
    errors = (observed.errors if observed else ()) + (desired.errors if desired else ())
    if errors:
        # The hook keeps what it runs now; nothing is attached, swapped or removed.
        return HookPlan(key, Action.BLOCKED, None, have, reasons=errors)
    if want is None:
        if have is None:
            return HookPlan(key, Action.UNCHANGED, None, None)
        return HookPlan(key, Action.REMOVE, None, have, removed=have.units, reasons=("no units left on this hook",))
    assert desired is not None  # it has a chain
    if key.hook is Hook.XDP and observed is not None and observed.foreign and not desired.takeover:
        # One XDP program per interface: ours would have to replace theirs.
        reason = (f"foreign XDP program {', '.join(observed.foreign)} is attached; bpfunits leaves it alone "
                  "(list the interface under `takeover` in the configuration to replace it)")
        return HookPlan(key, Action.BLOCKED, None, have, reasons=(reason,))
    if have is None:
        return HookPlan(key, Action.CREATE, want, None, added=want.units, reasons=desired.notes)
    old = {c.unit: c for c in have.components}
    new = {c.unit: c for c in want.components}
    other_maps = tuple(u for u in want.units if u in old and _other_maps(new[u], old[u]))
    if want == have and not other_maps:
        return HookPlan(key, Action.UNCHANGED, want, have)

    added = tuple(u for u in want.units if u not in old)
    removed = tuple(u for u in have.units if u not in new)
    changed = tuple(u for u in want.units if u in old and (old[u] != new[u] or u in other_maps))
    moved = _moved([u for u in have.units if u in new], [u for u in want.units if u in old])
    reasons: tuple[str, ...] = ()
    if want.build != have.build:
        reasons = (f"chain build changed: {have.build} -> {want.build}",)
    reasons += tuple(f"unit {u}: the chain runs other maps than those pinned for the unit (an apply was "
                     "interrupted): rebuilt with the pinned ones" for u in other_maps)
    reasons += tuple(f"unit {u}: {line}" for u in changed
                     for line in global_changes(old[u].globals, new[u].globals, dict(new[u].compiled)))
    reasons += desired.notes
    return HookPlan(key, Action.REPLACE, want, have, added, removed, moved, changed, reasons)


def global_changes(before: tuple[tuple[str, str], ...], after: tuple[tuple[str, str], ...],
                   compiled: dict[str, str]) -> list[str]:
    """`~ global NAME OLD -> NEW` per Global= that changed; a value not declared is the object's own
    (`compiled`, when known)."""
    old, new = dict(before), dict(after)

    def shown(values: dict[str, str], name: str) -> str:
        return values.get(name) or compiled.get(name) or "(as compiled)"

    return [f"~ global {name} {shown(old, name)} -> {shown(new, name)}"
            for name in sorted(old.keys() | new.keys()) if old.get(name) != new.get(name)]


def _other_maps(want: ChainMember, have: ChainMember) -> bool:
    """Whether the running component uses another map than the one pinned for its unit."""
    running = dict(have.maps)
    return any(name in running and running[name] != map_id for name, map_id in want.maps)


def plan_all(desired: Iterable[Desired], observed: Iterable[Observed]) -> list[HookPlan]:
    want = {d.key: d for d in desired}
    have = {o.key: o for o in observed}
    return [plan_hook(key, want.get(key), have.get(key)) for key in sorted(want.keys() | have.keys())]


def _moved(before: list[str], after: list[str]) -> tuple[str, ...]:
    """Units whose order relative to the others changed: those outside the longest common
    subsequence of the old and new orders (the fewest units that explain the reorder)."""
    kept: set[str] = set()
    for block in SequenceMatcher(a=before, b=after, autojunk=False).get_matching_blocks():
        kept.update(before[block.a : block.a + block.size])
    return tuple(u for u in after if u not in kept)
