"""Units on event hooks, reconciled like chains but one program each and on no interface: what
runs (each unit's pinned link) is observed, compared with each unit's program, and with apply
attached, replaced or detached; a unit whose program does not load, or whose hook this kernel
lacks, keeps what it runs and is that unit's error."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote

from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import eventlink
from bpfunits.hooks.events import EventHook
from bpfunits.load import mappins
from bpfunits.load.load import LoadError
from bpfunits.load.program import LoadedProgram
from bpfunits.pinname import folder_name
from bpfunits.reconcile.desired import Programs
from bpfunits.state.bpffs import StateRoot
from bpfunits.sys import bpf
from bpfunits.units.model import Unit


@dataclass(frozen=True)
class EventResult:
    unit: str
    hook: str  # as Hook= spells it; for a unit that is gone, the pin it left
    action: str  # attach, replace, remove, unchanged, blocked
    outcome: str  # unchanged, planned, applied, blocked, failed (as a chain hook's)
    errors: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    prog_id: int | None = None  # the unit's program on the hook after the reconcile
    link_id: int | None = None
    run_count: int | None = None  # with kernel.bpf_stats_enabled

    @property
    def running(self) -> bool:
        return self.link_id is not None


_Identity = tuple[str, tuple[int, ...], tuple[tuple[str, bytes | None], ...]]


def _info_of(prog_id: int) -> bpf.ProgInfo | None:
    """None when the program went away."""
    try:
        fd = bpf.prog_get_fd_by_id(prog_id)
    except bpf.BpfError:
        return None
    try:
        return bpf.prog_info(fd)
    finally:
        os.close(fd)


def _program_identity(prog_id: int) -> _Identity | None:
    """A program's tag, the maps holding state it uses and the contents of its read-only data: what
    makes a running program the one a unit would load (read-only data is made anew by each load, and
    holds the values of its .rodata globals, Global= among them)."""
    info = _info_of(prog_id)
    if info is None:
        return None
    ids, constants = [], []
    for map_id in info.map_ids:
        try:
            map_fd = bpf.map_get_fd_by_id(map_id)
        except bpf.BpfError:
            continue
        try:
            facts = bpf.map_info(map_fd)
            if mappins.holds_state(facts.name):
                ids.append(map_id)
            else:
                constants.append((facts.name, bpf.map_lookup(map_fd, bytes(facts.key_size), facts.value_size)))
        except bpf.BpfError:
            continue
        finally:
            os.close(map_fd)
    return info.tag, tuple(sorted(ids)), tuple(sorted(constants, key=lambda c: c[0]))


def _run_count(prog_id: int | None) -> int | None:
    """How often the program ran, as far as the kernel counted: while kernel.bpf_stats_enabled is
    1 or a BPF_ENABLE_STATS fd is open (which the sysctl does not show). None when it never
    counted, where 0 would suggest the program never ran."""
    info = _info_of(prog_id) if prog_id is not None else None
    if info is None:
        return None
    return info.run_cnt if info.run_cnt or info.run_time_ns or _stats_enabled() else None


def _stats_enabled() -> bool:
    try:
        with open("/proc/sys/kernel/bpf_stats_enabled") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def load_programs(units: dict[str, Unit], programs: Programs) -> None:
    """Load the programs of the event units this kernel can run, and so those of the units whose
    maps they take, ahead of the reconcile: their declared map entries are written before they
    attach."""
    for unit in units.values():
        if isinstance(unit.hook, EventHook) and eventlink.unavailable(unit.hook) is None:
            programs.get(unit)


def reconcile_events(units: dict[str, Unit], programs: Programs, root: StateRoot, *, apply: bool,
                     broken: dict[str, str]) -> list[EventResult]:
    """Every event unit's hook, and the links of units that are no event units any more."""
    found = eventlink.running(root)
    results = []
    wanted = {folder_name(u.name): u for u in units.values() if isinstance(u.hook, EventHook)}
    for folder, unit in sorted(wanted.items()):
        results.append(_one(unit, found.get(folder, []), programs, root, apply))
    for folder in sorted(found.keys() - wanted.keys()):
        name = unquote(folder)
        links = found[folder]
        if name in broken:
            reason = f"unit {name} is running here but its files have errors; it keeps running until they are " \
                     f"fixed or removed: {broken[name]}"
            results.append(EventResult(name, links[0].pin.name, "blocked", "blocked", (reason,),
                                       prog_id=links[0].prog_id, link_id=links[0].link_id))
            continue
        try:
            if apply:
                eventlink.remove_unit(root, folder)
            results.append(EventResult(name, links[0].pin.name, "remove", "applied" if apply else "planned",
                                       prog_id=None if apply else links[0].prog_id))
        except (BpfUnitsError, OSError) as e:
            results.append(EventResult(name, links[0].pin.name, "remove", "failed", (str(e),),
                                       prog_id=links[0].prog_id, link_id=links[0].link_id))
    return results


def _one(unit: Unit, links: list[eventlink.Running], programs: Programs, root: StateRoot,
         apply: bool) -> EventResult:
    hook = unit.hook
    assert isinstance(hook, EventHook)
    pin = eventlink.pin_name(hook)
    current = next((link for link in links if link.pin.name == pin and eventlink.attached(hook, link)), None)
    before = current or (links[0] if links else None)

    def kept(outcome: str, errors: tuple[str, ...], action: str = "blocked") -> EventResult:
        prog = before.prog_id if before else None
        return EventResult(unit.name, hook.value, action, outcome, errors, prog_id=prog,
                           link_id=before.link_id if before else None, run_count=_run_count(prog))

    if reason := eventlink.unavailable(hook):
        return kept("blocked", (f"unit {unit.name}: {reason}",))
    program = programs.get(unit)
    if program is None:
        return kept("blocked", (programs.errors[unit.name],))
    want = _program_identity(program.id)
    if current is not None and want is not None and _program_identity(current.prog_id) == want and len(links) == 1:
        return kept("unchanged", (), "unchanged")
    if current is not None:
        action, why = "replace", "its program changed"
    elif links:
        action, why = "replace", "its hook changed, or its link was detached by someone else"
    else:
        action, why = "attach", "not running"
    if not apply:
        return EventResult(unit.name, hook.value, action, "planned", reasons=(why,),
                           prog_id=before.prog_id if before else None, link_id=before.link_id if before else None)
    try:
        program, link_id = _attach(unit, hook, program, programs, root)
        for stale in links:
            if stale.pin.name != pin:
                eventlink.detach(stale.pin)
        programs.commit((unit.name,))
    except LoadError as e:  # names the unit
        return kept("failed", (str(e),), action)
    except (BpfUnitsError, OSError) as e:
        return kept("failed", (f"unit {unit.name}: {e}",), action)
    return EventResult(unit.name, hook.value, action, "applied", reasons=(why,), prog_id=program.id,
                       link_id=link_id, run_count=_run_count(program.id))


def _attach(unit: Unit, hook: EventHook, program: LoadedProgram, programs: Programs,
            root: StateRoot) -> tuple[LoadedProgram, int]:
    """Attach the unit's program and pin its link; the program and the link's id. A tracing
    program that ran before (older kernels attach one only once) is loaded anew first."""
    try:
        return program, eventlink.attach(root, unit.name, hook, program.fd)
    except eventlink.AttachedBefore:
        reloaded = programs.reload(unit)
        if reloaded is None:
            raise LoadError(programs.errors[unit.name]) from None
        return reloaded, eventlink.attach(root, unit.name, hook, reloaded.fd)
