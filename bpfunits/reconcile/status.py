"""Status: per hook, the chain that runs and the one wanted, unit by unit, with counters."""

from __future__ import annotations

from dataclasses import dataclass

from bpfunits.hooks.observe import Attached
from bpfunits.linker.counters import ComponentCounts, read_counters
from bpfunits.order.graph import HookKey
from bpfunits.plan.model import Action
from bpfunits.reconcile.engine import HookResult, Result


@dataclass(frozen=True)
class UnitStatus:
    unit: str
    state: str  # active | pending | removing | failed
    tag: str | None
    packets: int | None  # entered this unit, from the chain's counters
    verdicts: dict[str, int]  # verdict name -> packets
    error: str | None = None


@dataclass(frozen=True)
class Retrying:
    """A hook the daemon failed to reconcile and tries again (from its state file)."""

    failures: int  # in a row
    next_try: float  # time.time()
    error: str


@dataclass(frozen=True)
class HookStatus:
    key: HookKey
    program: Attached | None
    units: tuple[UnitStatus, ...]
    pending: str  # the plan's action for this hook (unchanged when it runs its chain)
    errors: tuple[str, ...]
    foreign: tuple[Attached, ...]
    retry: Retrying | None = None


def status_of(result: Result, retries: dict[HookKey, Retrying] | None = None) -> list[HookStatus]:
    """Each hook's status; `retries`: the daemon's failing hooks."""
    return [_hook(h, result.unit_errors, (retries or {}).get(h.key)) for h in result.hooks]


def _hook(h: HookResult, unit_errors: dict[str, str], retry: Retrying | None) -> HookStatus:
    running = h.plan.observed.components if h.plan.observed else ()
    wanted = {c.unit: c for c in h.plan.desired.components} if h.plan.desired else {}
    counts = {c.name: c for c in (read_counters(h.running.prog_id) or [])} if h.running else {}
    verdict_names = {code: name for name, code in h.key.hook.verdicts.items()}
    keeps_running = h.plan.action in (Action.UNCHANGED, Action.BLOCKED)
    rows = []
    for c in running:
        if c.unit in unit_errors:
            state = "failed"
        elif keeps_running or wanted.get(c.unit) == c:
            state = "active"
        else:
            state = "pending" if c.unit in wanted else "removing"
        rows.append(_row(c.unit, state, c.tag, counts.get(c.unit), verdict_names, unit_errors))
    shown = {r.unit for r in rows}
    for unit in h.ordered:
        if unit not in shown:
            state = "failed" if unit in unit_errors else "pending"
            tag = wanted[unit].tag if unit in wanted else None
            rows.append(_row(unit, state, tag, None, verdict_names, unit_errors))
    errors = tuple(dict.fromkeys(h.plan.reasons + h.errors))  # a blocked hook's reasons are its errors
    return HookStatus(h.key, h.running, tuple(rows), h.plan.action.value, errors, h.foreign, retry)


def _row(unit, state, tag, counts: ComponentCounts | None, verdict_names, unit_errors) -> UnitStatus:
    verdicts = {}
    if counts is not None:
        verdicts = {verdict_names.get(code, str(code)): n for code, n in counts.verdicts.items() if n}
        if counts.unknown:
            verdicts["other"] = counts.unknown
    return UnitStatus(unit, state, tag, counts.entered if counts else None, verdicts,
                      unit_errors.get(unit) if state == "failed" else None)
