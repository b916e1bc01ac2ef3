"""Units on event hooks, reconciled like chains but one program each and on no interface: what
runs (each unit's pinned link) is observed, compared with each unit's program, and with apply
attached, replaced or detached; a unit whose program does not load, or whose hook this kernel
lacks, keeps what it runs and is that unit's error.

Where the kernel has cgroup mprog (6.16+), the units of one cgroup hook run in their declared
order: the kernel's order (BPF_PROG_QUERY) is compared with it, a new link goes right after the
unit declared before it (or right before the one declared after it), and a unit out of order is
moved: a new link in its place, then the old one is dropped (so for a moment it runs twice; the
kernel has no move). A cgroup link's new program is swapped in place (BPF_LINK_UPDATE, atomic)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote

from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import eventlink
from bpfunits.hooks.events import EventHook
from bpfunits.linker.manifest import MAP_NAME
from bpfunits.load import mappins
from bpfunits.load.load import LoadError
from bpfunits.load.program import LoadedProgram
from bpfunits.order.events import neighbour, order_events, out_of_order
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
    order: tuple[str, ...] = ()  # on an ordered (cgroup) hook: its units in their declared run order
    foreign: tuple[int, ...] = ()  # on an ordered hook: programs bpfunits did not attach (left in place)

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
            if facts.name == MAP_NAME:
                continue  # the manifest: a new map with each load, not what makes it the unit's program
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
    wanted = {folder_name(u.name): u for u in units.values() if isinstance(u.hook, EventHook)}
    done = _ordered_hooks(list(wanted.values()), found, programs, root, apply)
    results = []
    for folder, unit in sorted(wanted.items()):
        results.append(done.get(unit.name) or _one(unit, found.get(folder, []), programs, root, apply))
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


def _current(hook: EventHook, links: list[eventlink.Running]) -> eventlink.Running | None:
    """The unit's link on `hook`, if it still runs there."""
    pin = eventlink.pin_name(hook)
    return next((link for link in links if link.pin.name == pin and eventlink.attached(hook, link)), None)


class _Slots:
    """The units of one cgroup hook that the kernel runs in an order bpfunits sets: which run out
    of their declared order, and where one attached now goes."""

    def __init__(self, hook: EventHook, order: tuple[Unit, ...], declared: list[str],
                 current: dict[str, eventlink.Running], kernel: tuple[int, ...], ours: set[int]):
        self.hook = hook
        self.order = tuple(u.name for u in order)
        self.declared = declared  # those of `order` that can run here (their program loaded)
        first = {prog_id: i for i, prog_id in reversed(list(enumerate(kernel)))}
        running = sorted((n for n in declared if n in current and current[n].prog_id in first),
                         key=lambda n: first[current[n].prog_id])
        self.misplaced = out_of_order(declared, running)
        self.kernel_order = running
        self.placed = {n: current[n].link_id for n in running if n not in self.misplaced}
        self.foreign = tuple(p for p in kernel if p not in ours)

    def why(self) -> str:
        return (f"it runs out of its declared order (the kernel runs {', '.join(self.kernel_order)}; "
                f"declared: {', '.join(self.declared)})")

    def place(self, unit: str) -> eventlink.Place:
        before, link_id = neighbour(self.declared, unit, self.placed)
        return eventlink.Place(before, link_id, eventlink.query(self.hook).revision)


def _ordered_hooks(units: list[Unit], found: dict[str, list[eventlink.Running]], programs: Programs,
                   root: StateRoot, apply: bool) -> dict[str, EventResult]:
    """The results of the units on hooks this kernel orders, each hook's units in declared order
    (a unit is placed next to those before it)."""
    ordering = order_events(u for u in units if isinstance(u.hook, EventHook) and eventlink.ordered(u.hook))
    results: dict[str, EventResult] = {}
    for exc in ordering.errors:
        for unit in units:
            if unit.hook == exc.key:
                links = found.get(folder_name(unit.name), [])
                results[unit.name] = _kept(unit, links[0] if links else None, "blocked", (str(exc),))
    ours = {link.prog_id for links in found.values() for link in links}
    for hook, order in ordering.orders.items():
        current = {}
        for unit in order:
            if (link := _current(hook, found.get(folder_name(unit.name), []))) is not None:
                current[unit.name] = link
        try:
            kernel = eventlink.query(hook).prog_ids
        except eventlink.EventAttachError:
            continue  # no such cgroup (any more): each unit's attach says so
        declared = [u.name for u in order if eventlink.unavailable(hook) is None and programs.get(u) is not None]
        slots = _Slots(hook, order, declared, current, kernel, ours)
        for unit in order:
            results[unit.name] = _one(unit, found.get(folder_name(unit.name), []), programs, root, apply, slots)
    return results


def _kept(unit: Unit, before: eventlink.Running | None, outcome: str, errors: tuple[str, ...],
          action: str = "blocked", slots: _Slots | None = None) -> EventResult:
    """The unit as it runs (or not), unchanged."""
    assert isinstance(unit.hook, EventHook)
    prog = before.prog_id if before else None
    return EventResult(unit.name, unit.hook.value, action, outcome, errors, prog_id=prog,
                       link_id=before.link_id if before else None, run_count=_run_count(prog),
                       **_hook_facts(slots))


def _hook_facts(slots: _Slots | None) -> dict:
    return {} if slots is None else {"order": slots.order, "foreign": slots.foreign}


def _one(unit: Unit, links: list[eventlink.Running], programs: Programs, root: StateRoot,
         apply: bool, slots: _Slots | None = None) -> EventResult:
    hook = unit.hook
    assert isinstance(hook, EventHook)
    pin = eventlink.pin_name(hook)
    current = _current(hook, links)
    before = current or (links[0] if links else None)
    if reason := eventlink.unavailable(hook):
        return _kept(unit, before, "blocked", (f"unit {unit.name}: {reason}",), slots=slots)
    program = programs.get(unit)
    if program is None:
        return _kept(unit, before, "blocked", (programs.errors[unit.name],), slots=slots)
    want = _program_identity(program.id)
    same = current is not None and want is not None and _program_identity(current.prog_id) == want
    misplaced = slots is not None and unit.name in slots.misplaced
    if same and len(links) == 1 and not misplaced:
        return _kept(unit, before, "unchanged", (), "unchanged", slots)
    # A cgroup link in its place takes its new program in one step; elsewhere a new link comes
    # before the old one goes.
    swap = current is not None and hook.kind.is_cgroup and not misplaced and not same
    if current is not None and misplaced:
        action, why = "move", slots.why() if slots else ""
    elif current is not None and not same:
        action, why = "replace", "its program changed"
    elif current is not None:
        action, why = "replace", "it left a link on another hook"
    elif links:
        action, why = "replace", "its hook changed, or its link was detached by someone else"
    else:
        action, why = "attach", "not running"
    if not apply:
        return EventResult(unit.name, hook.value, action, "planned", reasons=(why,),
                           prog_id=before.prog_id if before else None, link_id=before.link_id if before else None,
                           **_hook_facts(slots))
    try:
        if swap:
            assert current is not None
            eventlink.update(current, program.fd)
            link_id = current.link_id
        elif current is not None and same and not misplaced:
            link_id = current.link_id  # only stale links to drop
        else:
            place = slots.place(unit.name) if slots else None
            program, link_id = _attach(unit, hook, program, programs, root, place)
        if slots is not None:
            slots.placed[unit.name] = link_id
        for stale in links:
            if stale.pin.name != pin:
                eventlink.detach(stale.pin)
        programs.commit((unit.name,))
    except LoadError as e:  # names the unit
        return _kept(unit, before, "failed", (str(e),), action, slots)
    except (BpfUnitsError, OSError) as e:
        return _kept(unit, before, "failed", (f"unit {unit.name}: {e}",), action, slots)
    return EventResult(unit.name, hook.value, action, "applied", reasons=(why,), prog_id=program.id,
                       link_id=link_id, run_count=_run_count(program.id), **_hook_facts(slots))


def _attach(unit: Unit, hook: EventHook, program: LoadedProgram, programs: Programs, root: StateRoot,
            place: eventlink.Place | None) -> tuple[LoadedProgram, int]:
    """Attach the unit's program (at `place` among a cgroup hook's) and pin its link; the program
    and the link's id. A tracing program that ran before (older kernels attach one only once) is
    loaded anew first."""
    try:
        return program, eventlink.attach(root, unit.name, hook, program.fd, place)
    except eventlink.AttachedBefore:
        reloaded = programs.reload(unit)
        if reloaded is None:
            raise LoadError(programs.errors[unit.name]) from None
        return reloaded, eventlink.attach(root, unit.name, hook, reloaded.fd, place)
