"""One reconcile: units and the live kernel in; a plan per hook; with apply, one atomic kernel
operation per changed hook. Errors stay with their hook: the others proceed."""

from __future__ import annotations

import os
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from enum import Enum

from bpfunits.config import Config
from bpfunits.declare import entries as declared_entries
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.hooks import attach as attaching
from bpfunits.hooks import frags, probe
from bpfunits.load import mappins
from bpfunits.state import pins
from bpfunits.sys import bpf, rtnl
from bpfunits.state.bpffs import StateRoot, children, ensure_mounted, names, prune_empty, remove_tree
from bpfunits.hooks.observe import Attached, Observer, ProgramFacts
from bpfunits.units.model import Location, MapEntry, Unit
from bpfunits.hooks.probe import TcBackend, XdpBackend
from bpfunits.hooks.tcx import TcPosition
from bpfunits.hooks.xdp import XdpMode
from bpfunits.linker.counters import carried
from bpfunits.linker.linker import Linkings, link_chain
from bpfunits.order.chains import order_all
from bpfunits.order.interfaces import select
from bpfunits.order.graph import Chain, HookKey
from bpfunits.plan.diff import plan_all
from bpfunits.plan.model import Action, Desired, HookPlan
from bpfunits.reconcile import factcache
from bpfunits.reconcile import observed as observing
from bpfunits.reconcile.desired import Programs, blocked_by_broken_units, build_id, desired_chain, map_owners
from bpfunits.reconcile.events import EventResult, load_programs, reconcile_events
from bpfunits.reconcile.lock import exclusive
from bpfunits.reconcile.memory import EVERYTHING, Changes, Left, Memory, Retry
from bpfunits.reconcile.node import Node
from bpfunits.units.diagnostics import Diagnostic, Severity, error
from bpfunits.units.search import LoadResult, load_units


class Outcome(str, Enum):
    UNCHANGED = "unchanged"
    PLANNED = "planned"  # a change, not carried out (plan only)
    APPLIED = "applied"
    BLOCKED = "blocked"  # errors before any kernel change: the hook keeps what it runs
    FAILED = "failed"  # the change could not be built or the kernel refused it: the hook keeps what it runs


@dataclass
class HookResult:
    plan: HookPlan
    outcome: Outcome
    errors: tuple[str, ...] = ()
    prog_id: int | None = None  # bpfunits' program on the hook after the reconcile
    running: Attached | None = None  # bpfunits' program as observed before the reconcile
    foreign: tuple[Attached, ...] = ()
    ordered: tuple[str, ...] = ()  # the units ordered onto this hook, even when it is blocked
    attached: Attached | None = None  # bpfunits' program the reconcile attached (applied hooks)
    # Why the units' counts were not carried over to the new chain: a warning, the swap went on.
    uncarried: str | None = None

    @property
    def key(self) -> HookKey:
        return self.plan.key


@dataclass
class Result:
    hooks: list[HookResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unit_errors: dict[str, str] = field(default_factory=dict)  # units whose files or programs failed
    # The reconciler's view of the whole node (the hooks above may be only the dirty ones):
    total: int = 0  # hooks that run or want a chain of bpfunits, or run something else
    ordered: int = 0  # the interfaces whose units were ordered (what the reconcile cost grows with)
    retries: dict[HookKey, Retry] = field(default_factory=dict)  # failing hooks, and when they are tried again
    # Declared map entries the kernel lacked (written by apply, shown by plan).
    entries: list[declared_entries.EntryDiff] = field(default_factory=list)
    declared: list[tuple[str, MapEntry]] = field(default_factory=list)  # (unit, entry) compared with the kernel
    entry_errors: list[str] = field(default_factory=list)
    events: list[EventResult] = field(default_factory=list)  # the units on event hooks (one program each)

    @property
    def changed(self) -> bool:
        return bool(self.entries) or any(h.outcome in (Outcome.APPLIED, Outcome.PLANNED) for h in self.hooks) or any(
            e.outcome in ("applied", "planned") for e in self.events)

    def next_retry(self) -> float | None:
        """When (time.monotonic()) the first failing hook is tried again."""
        return min((r.at for r in self.retries.values()), default=None)

    def xdp_programs(self) -> dict[str, frozenset[int]]:
        """Per interface with an XDP hook reconciled: bpfunits' program left on it (none when
        there is none)."""
        return {h.key.interface: frozenset({h.prog_id} if h.prog_id else ())
                for h in self.hooks if h.key.hook is Hook.XDP}

    @property
    def failed(self) -> bool:
        return any(h.outcome in (Outcome.BLOCKED, Outcome.FAILED) or h.errors for h in self.hooks) or any(
            d.severity is Severity.ERROR for d in self.diagnostics
        ) or bool(self.entry_errors) or any(e.errors for e in self.events)


# Up to this many hooks, a reconcile reads each with its own requests rather than one listing of
# the whole namespace (whose cost grows with every interface there).
FEW_HOOKS = 16


def attach_options(config: Config) -> attaching.AttachOptions:
    return attaching.AttachOptions(
        xdp_backend=XdpBackend(config.xdp_backend),
        xdp_mode=XdpMode(config.xdp_mode),
        tc_backend=TcBackend(config.tc_backend),
        tc_position=TcPosition(config.tc_position),
    )


def _no_tail_calls() -> str | None:
    """Why a component's tail call cannot run as that component alone here, or None."""
    features = probe.features()
    for feature in (probe.SUBPROG_TAIL_CALLS, probe.SUBPROG_TAIL_CALL_RETURNS):
        if not features.has(feature):
            return features.missing(feature)
    return None


def reconcile(config: Config, *, apply: bool, node: Node | None = None, changes: Changes = EVERYTHING) -> Result:
    """Plan (and with `apply`, carry out) the hooks of this network namespace. Only apply
    changes anything: plan and status mount nothing, and create no folder and no pin.
    `node`: what earlier reconciles kept (the daemon's): loaded programs, and its memory of each
    hook, with which an apply looks only at the hooks `changes` makes dirty. Without it, every
    hook is looked at and every program is loaded and released again."""
    probe.features().require_supported()  # also raises RLIMIT_MEMLOCK where needed
    if apply:
        ensure_mounted()
    root = StateRoot(config.bpffs_root)
    with exclusive(config.lock_file), _node_or_own(node, config) as kept:
        root.check(create=apply)
        everything = changes.everything or not kept.memory.complete or not apply
        result = _Run(config, root, kept, apply, EVERYTHING if everything else changes, node is not None).go()
        if apply:
            kept.memory.complete = True
            if node is None:
                with suppress(OSError):  # costs the next process only the reads it saves
                    factcache.save(factcache.path_beside(config.state_file), kept.facts.known())
        return result


@contextmanager
def _node_or_own(node: Node | None, config: Config) -> Iterator[Node]:
    if node is not None:
        yield node
        return
    own = Node(facts=ProgramFacts(factcache.load(factcache.path_beside(config.state_file))))
    try:
        yield own
    finally:
        own.close()


@dataclass
class _Run:
    config: Config
    root: StateRoot
    node: Node
    apply: bool
    changes: Changes
    lasting: bool  # the node outlives this reconcile (the daemon's), so it holds the chains' links
    programs: Programs = field(init=False)
    live: dict[str, int] = field(default_factory=dict)
    chains: dict[HookKey, Chain] = field(default_factory=dict)
    desired: dict[HookKey, Desired] = field(default_factory=dict)
    states: dict[HookKey, observing.HookState] = field(default_factory=dict)
    # Identical chains (a glob unit's on many interfaces) are linked once per reconcile; each
    # is loaded with counter and manifest maps of its own.
    linked: Linkings = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.programs = Programs(self.root, self.node.programs, self.config.file_policy)

    @property
    def memory(self) -> Memory:
        return self.node.memory

    def go(self) -> Result:
        now = time.monotonic()
        self.live = observing.interfaces()
        # An event costs what it touches: the units are ordered and compared only on the
        # interfaces it names, those that appeared, went or were renamed since the last reconcile
        # (an event lost), and those where units whose files changed are or were (the unit files
        # as last read when none may have). Only a start or a reload orders everything.
        # A resync also looks at what runs on every hook, with cheap reads, and the hooks whose
        # programs are not what was left there are touched too.
        previous = self.node.units
        touched = None
        drifted: set[HookKey] = set()
        observer = Observer(self.root, self.node.facts, whole_namespace=True)
        if self.changes.narrow and previous is not None:
            loaded = previous
        else:
            loaded = load_units(self.config.units_dirs, policy=self.config.file_policy)
        if previous is not None and not self.changes.everything:
            touched = set(self.changes.interfaces) | {k.interface for k in self.changes.hooks}
            touched |= {k.interface for k in self.memory.due(now)}
            earlier = self.memory.interfaces
            touched |= {n for n in earlier.keys() | self.live.keys() if earlier.get(n) != self.live.get(n)}
            if loaded is not previous:
                touched |= self.where_units_moved(previous, loaded)
            if self.changes.kernel:
                drifted = {k for k in self.drifted(observer) if not self.memory.waiting(k, now)}
                touched |= {k.interface for k in drifted}
        self.programs.units = loaded.units
        if self.apply:
            self.node.units = loaded
            self.memory.interfaces = dict(self.live)
        ordering = order_all(loaded.units.values(), self.live if touched is None else touched & self.live.keys())
        self.chains = ordering.chains
        broken = _broken(loaded)
        if self.apply:
            self.memory.forget_interfaces(self.live)
        inputs = self.inputs(loaded, ordering.errors, broken, touched)
        scope = None if touched is None else self.scope(inputs, drifted, now, touched)
        if scope is not None and len(scope) <= FEW_HOOKS and not self.changes.kernel:
            # A few hooks: a request each costs less than listing every interface.
            observer = Observer(self.root, self.node.facts)
        self.states = observing.read_all(self.live, observer, only=scope)
        if self.apply:
            self.adopt()
            self.repin()

        def wanted(key: HookKey) -> bool:
            return scope is None or key in scope

        for key, chain in self.chains.items():
            if wanted(key):
                self.desired[key] = desired_chain(chain, self.programs, self.config.counters, self.config.takeover)
        for failure in ordering.errors:
            if wanted(failure.key):
                self.desired[failure.key] = Desired(failure.key, None, (str(failure),))
        for key, state in self.states.items():
            block = blocked_by_broken_units(key, state.observed.chain, broken)
            if block is not None:
                self.desired[key] = block

        result = Result(diagnostics=list(loaded.diagnostics), ordered=len(self.live if touched is None else touched))
        # Before any chain or event unit is attached: a new unit never runs without its declared entries.
        load_programs(loaded.units, self.programs)
        self.sync_entries(loaded, result)
        for plan in plan_all(self.desired.values(), [s.observed for s in self.states.values()]):
            before = self.states.get(plan.key)
            hook = self.carry_out(plan)
            hook.running, hook.foreign = (before.ours, before.observation.foreign) if before else (None, ())
            hook.ordered = self.chains[plan.key].names if plan.key in self.chains else ()
            result.hooks.append(hook)
            if hook.outcome is Outcome.APPLIED and hook.prog_id is not None:
                # Learnt now, while the program is surely there: the next reconcile (and, through
                # the programs cache, the next process) does not read it again.
                with suppress(BpfUnitsError):
                    self.node.facts.manifest(hook.prog_id)
        result.events = reconcile_events(loaded.units, self.programs, self.root, apply=self.apply, broken=broken)
        result.unit_errors = {**broken, **self.programs.errors}
        if self.apply:
            self.remember(result, inputs, scope, now)
            result.diagnostics += self.clean_up(scope, {e.unit for e in result.events if e.running})
        # Programs stay cached while their unit is on some hook: those ordered here, and where
        # only some interfaces were looked at, those running on the others.
        keep = {u.name for chain in self.chains.values() for u in chain.units}
        keep = keep if touched is None else keep | self.memory.running_units()
        keep |= {u.name for u in loaded.units.values() if not u.chained}
        self.node.programs.sweep(keep=keep | map_owners(loaded.units, keep))
        self.node.facts.sweep(keep=self.memory.programs())
        result.total = len(self.memory.hooks) if self.apply else len(result.hooks)
        result.retries = dict(self.memory.retries)
        return result

    def sync_entries(self, loaded: LoadResult, result: Result) -> None:
        """Compare the declared map entries of every unit whose program is at hand (loaded for this
        reconcile, or cached as running) with its maps; apply writes what differs."""
        for name, unit in sorted(loaded.units.items()):
            if not unit.map_entries and not unit.exact_maps:
                continue
            cached = self.node.programs.cached(name)
            if cached is None or cached.unit != unit or cached.typed is None or cached.typed.obj is None:
                continue
            maps = cached.program.maps
            try:
                diffs = declared_entries.differences(name, cached.typed, maps, unit.exact_maps)
                if self.apply and diffs:
                    per_cpu = frozenset(m for m, t in cached.typed.obj.maps.items() if t.per_cpu)
                    declared_entries.repair(diffs, maps, per_cpu)
            except (BpfUnitsError, OSError) as e:
                result.entry_errors.append(f"unit {name}: map entries: {e}")
                continue
            result.entries += diffs
            result.declared += [(name, e) for e in unit.map_entries if e.map in maps]

    def where_units_moved(self, before: LoadResult, after: LoadResult) -> set[str]:
        """The interfaces where a unit that changed (its file, a drop-in, its object, added,
        removed, broken or mended) sat before or sits now. Which interfaces a unit is on depends
        on its own Interfaces= alone, and its relations order only hooks it is on, so no other
        hook can change."""
        broken_before, broken_after = _broken(before), _broken(after)
        earlier = self.memory.unit_inputs
        moved = set()
        for name in before.units.keys() | after.units.keys() | broken_before.keys() | broken_after.keys():
            old, new = before.units.get(name), after.units.get(name)
            same = old == new and broken_before.get(name) == broken_after.get(name)
            if same and new is not None and name in earlier:
                same = earlier[name] == (new, _file_identity(new.program.source or new.program.object))
            if same:
                continue
            for unit in (old, new):
                if unit is not None:
                    moved.update(select(unit.interfaces, self.live))
            moved.update(k.interface for k, left in self.memory.hooks.items() if name in left.units)
        return moved

    def inputs(self, loaded: LoadResult, errors: list, broken: dict[str, str],
               touched: set[str] | None) -> dict[HookKey, Hashable]:
        """Per hook (of `touched` interfaces; None: all), what its desired chain is built from, as
        far as that is known without loading anything: its ordered units (their settings and
        their files' identity), its ordering error, and the units with broken files that its
        chain runs."""
        files: dict[str, Hashable] = {}
        earlier = self.memory.unit_inputs

        def unit_inputs(unit: Unit) -> Hashable:
            if unit.name not in files:
                found = (unit, _file_identity(unit.program.source or unit.program.object))
                # The same object as last time when equal: comparing each hook's inputs with the
                # remembered ones is then an identity check per unit, not a deep one.
                files[unit.name] = earlier[unit.name] if earlier.get(unit.name) == found else found
            return files[unit.name]

        found: dict[HookKey, Hashable] = {k: tuple(unit_inputs(u) for u in c.units) for k, c in self.chains.items()}
        found.update({e.key: ("error", str(e)) for e in errors})
        if self.apply:
            kept = {n: v for n, v in self.memory.unit_inputs.items() if n in loaded.units}
            self.memory.unit_inputs = files if touched is None else {**kept, **files}
        for key, left in self.memory.hooks.items():
            if touched is not None and key.interface not in touched:
                continue
            hit = tuple((u, broken[u]) for u in left.units if u in broken)
            if hit:
                found[key] = (found.get(key), hit)
        return found

    def scope(self, inputs: dict[HookKey, Hashable], drifted: set[HookKey], now: float,
              touched: set[str]) -> set[HookKey]:
        """The dirty hooks: whose inputs changed, that an event names, whose retry is due, and
        (at a resync) whose programs differ from what was left there. `touched`: the only
        interfaces whose inputs were computed."""
        memory = self.memory
        remembered = {k for k in memory.hooks if k.interface in touched}
        changed = {k for k in inputs.keys() | remembered
                   if inputs.get(k) != (memory.hooks[k].inputs if k in memory.hooks else None)}
        named = {HookKey(i, h) for i in self.changes.interfaces for h in Hook} | set(self.changes.hooks)
        dirty = changed | named | memory.due(now) | drifted
        return {k for k in dirty if k.interface in self.live}

    def drifted(self, observer: Observer) -> set[HookKey]:
        """The hooks whose programs are not the ones the last reconcile left there, and those
        running a chain of ours whose pins are gone (the state root removed). Only hooks that
        units wanted or that ran a chain of ours are looked at: a program someone puts on a hook
        bpfunits has nothing to do with asks for nothing."""
        found = set()
        pinned = set(names(self.root.netns_path()))
        for key, left in self.memory.hooks.items():
            ifindex = self.live.get(key.interface)
            if ifindex is None:
                continue
            if left.units and f"if{ifindex}" not in pinned:
                found.add(key)
                continue
            try:
                now = observer.program_ids(ifindex, key.hook)
            except (BpfUnitsError, OSError):
                found.add(key)  # looking at it shows why
                continue
            if now != left.programs:
                found.add(key)
        return found

    def remember(self, result: Result, inputs: dict[HookKey, Hashable], scope: set[HookKey] | None,
                 now: float) -> None:
        looked_at = scope if scope is not None else {HookKey(i, h) for i in self.live for h in Hook}
        done = {h.key: h for h in result.hooks}
        for key in looked_at:
            hook = done.get(key)
            state = self.states.get(key)
            programs = _programs_after(key, hook, state)
            chain = _chain_after(hook) if hook else None
            failed = hook is not None and (hook.outcome in (Outcome.BLOCKED, Outcome.FAILED) or bool(hook.errors))
            error = "; ".join(hook.errors or hook.plan.reasons) if failed and hook is not None else None
            self.memory.record(key, Left(inputs.get(key), programs, chain.units if chain else ()), error, now)
            if self.lasting:
                self.node.links.hold(key, self.our_link(key, hook, state))
        for key in list(self.node.links.keys()):
            if key.interface not in self.live:
                self.node.links.release(key)

    def our_link(self, key: HookKey, hook: HookResult | None, state: observing.HookState | None) -> int | None:
        """The bpf_link of bpfunits' chain on the hook after the reconcile, if it runs through one."""
        if hook is not None and hook.outcome is Outcome.APPLIED:
            if hook.prog_id is None:
                return None
            link = pins.link_info(self.root.hook_path(self.live[key.interface], key.hook))
            return link.id if link else None
        return state.ours.link_id if state and state.ours else None

    def adopt(self) -> None:
        """Pin, in their hook folders, programs of ours found without that pin; a hook where
        that fails is an error of its own."""
        for key, state in self.states.items():
            if state.ours is None or not state.ours.adopt:
                continue
            try:
                attaching.adopt(state.ifindex, key.hook, state.ours, self.root)
            except BpfUnitsError as exc:
                observed = replace(state.observed, errors=(str(exc),))
                self.states[key] = replace(state, observed=observed)

    def repin(self) -> None:
        """Pin again, from the running chains, each unit map whose pin is gone (the state root
        removed, or an apply killed before it pinned the maps of the chain it had swapped in), so
        that loading the unit binds the maps the datapath uses. A hook where that fails is an
        error of its own."""
        restored = set()  # a unit on a thousand hooks: its maps are looked at once
        for key, state in self.states.items():
            chain = state.observed.chain
            try:
                for component in chain.components if chain else ():
                    for name, map_id in component.maps:
                        if (component.unit, name) not in restored:
                            mappins.restore(self.root, component.unit, name, map_id)
                            restored.add((component.unit, name))
            except BpfUnitsError as exc:
                observed = replace(state.observed, errors=(str(exc),))
                self.states[key] = replace(state, observed=observed)

    def running(self, key: HookKey) -> Attached | None:
        state = self.states.get(key)
        return state.ours if state else None

    def carry_out(self, plan: HookPlan) -> HookResult:
        before = self.running(plan.key)
        before_id = before.prog_id if before else None
        if plan.action is Action.UNCHANGED:
            return HookResult(plan, Outcome.UNCHANGED, prog_id=before_id)
        if plan.action is Action.BLOCKED:
            return HookResult(plan, Outcome.BLOCKED, plan.reasons, prog_id=before_id)
        ifindex = self.live[plan.key.interface]
        done = Outcome.APPLIED if self.apply else Outcome.PLANNED
        try:
            if plan.action is Action.REMOVE:
                if self.apply:
                    attaching.detach(ifindex, plan.key.hook, self.root)
                return HookResult(plan, done, prog_id=None if self.apply else before_id)
            # The chain is linked and loaded even for a plan, so the verifier's verdict on the
            # whole chain is known before anything changes.
            chain = self.chains[plan.key]
            components = [self.programs.component(u) for u in chain.units]
            build = build_id(self.config.counters)
            with link_chain(plan.key.hook, components, counters=self.config.counters, manifest=build,
                            owner=str(self.root.path), no_tail_calls=_no_tail_calls(), done=self.linked) as linked:
                without_frags = linked.without_frags
                link = rtnl.interface(ifindex) if without_frags else None
                if link and not self.apply:
                    mode = (before.mode if before else None) or self.config.xdp_mode
                    frags.check(plan.key.interface, link.mtu, frags.known_limit(link.kind, mode), without_frags)
                prog_fd = linked.load()
            try:
                if not self.apply:
                    return HookResult(plan, done, prog_id=before_id)
                with carried(before_id, prog_fd) as carry:
                    try:
                        attached = self.switch(plan, ifindex, prog_fd, before)
                    except BpfUnitsError as exc:
                        # The driver knows the MTU its buffers take without frags: its refusal,
                        # named as such.
                        refusal = frags.refused(plan.key.interface, link.mtu, without_frags, exc) if link else None
                        if refusal is None:
                            raise
                        raise refusal from exc
                errors: tuple[str, ...] = ()
                try:
                    self.programs.commit(chain.names)
                except BpfUnitsError as exc:
                    errors = (str(exc),)
                return HookResult(plan, done, errors, prog_id=attached.prog_id, attached=attached,
                                  uncarried=carry.failure)
            finally:
                os.close(prog_fd)
        except BpfUnitsError as exc:
            return HookResult(plan, Outcome.FAILED, (str(exc),), prog_id=before_id)

    def switch(self, plan: HookPlan, ifindex: int, prog_fd: int, before: Attached | None) -> Attached:
        """One kernel operation: attach where nothing of ours runs, else swap ours atomically."""
        hook = plan.key.hook
        if before is None:
            # A pin left behind by a program someone else removed is no reason to refuse: clear it.
            if attaching.held_by(ifindex, hook, self.root) is not None:
                attaching.detach(ifindex, hook, self.root)
            takeover = self.desired[plan.key].takeover
            return attaching.attach(ifindex, hook, prog_fd, self.root, attach_options(self.config), takeover=takeover)
        old_fd = bpf.prog_get_fd_by_id(before.prog_id)
        try:
            return attaching.replace(ifindex, hook, prog_fd, self.root, old_prog_fd=old_fd)
        finally:
            os.close(old_fd)

    def clean_up(self, scope: set[HookKey] | None, on_events: set[str]) -> list[Diagnostic]:
        """Remove the maps of units that no longer run anywhere (only after their programs left
        the datapath), the pins of this namespace's interfaces that are gone, the empty folders of
        the hooks looked at (a kill between detaching and pruning leaves them), and links pinned
        for other namespaces whose interface is gone. While a hook could not be read, what it runs
        is unknown: no unit's maps go then. A pin that cannot be removed is an error of its own."""
        live = {f"if{index}" for index in self.live.values()}
        netns_path = self.root.netns_path()
        for name in names(netns_path):
            if name not in live:
                remove_tree(netns_path / name)
        if scope is None:
            prune_empty(netns_path)
        for key in scope or ():
            folder = netns_path / f"if{self.live[key.interface]}" / key.hook.value
            for empty in (folder, folder.parent):
                if empty.is_dir() and not names(empty):
                    remove_tree(empty)
        elsewhere = observing.pinned_elsewhere(self.root)
        for folder in elsewhere.defunct:
            remove_tree(folder)
            for parent in (folder.parent, folder.parent.parent):
                if parent != self.root.hooks_path and not children(parent):
                    remove_tree(parent)
        if any(s.observed.errors for s in self.states.values()):
            return []
        running = elsewhere.units | self.memory.running_units() | on_events
        units = self.node.units.units if self.node.units else self.programs.units
        keep = {self.root.unit_path(name) for name in running | map_owners(units, running)}
        errors = []
        for folder in children(self.root.units_path):
            if folder not in keep:
                try:
                    remove_tree(folder)
                except (BpfUnitsError, OSError) as e:
                    errors.append(error(f"unpinning the maps of a unit that runs nowhere any more failed: {e}",
                                        Location(folder), unit=folder.name))
        return errors


def _broken(loaded: LoadResult) -> dict[str, str]:
    """The units whose files are broken, with why."""
    return {d.unit: d.message for d in loaded.errors if d.unit and d.unit not in loaded.units}


def _file_identity(path: os.PathLike | None) -> Hashable:
    """A file's identity without reading it: a write or a rename into place changes it."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError) as e:
        return ("unreadable", str(e))
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _chain_after(hook: HookResult):
    """bpfunits' chain on the hook after the reconcile."""
    if hook.plan.action is Action.REMOVE and hook.outcome is Outcome.APPLIED:
        return None
    return hook.plan.desired if hook.outcome in (Outcome.APPLIED, Outcome.UNCHANGED) else hook.plan.observed


def _programs_after(key: HookKey, hook: HookResult | None, state: observing.HookState | None) -> frozenset[int]:
    """The programs on the hook after the reconcile: what was observed, with ours replaced by
    what the reconcile left (on XDP, only one program runs)."""
    before = {p.prog_id for p in state.observation.programs} if state else set()
    ours = state.ours.prog_id if state and state.ours else None
    now = hook.prog_id if hook else ours
    if now == ours:
        return frozenset(before)
    if now is not None and key.hook is Hook.XDP:
        return frozenset({now})
    return frozenset((before - {ours}) | ({now} if now is not None else set()))
