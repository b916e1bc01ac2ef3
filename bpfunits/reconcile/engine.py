"""One reconcile: units and the live kernel in; a plan per hook; with apply, one atomic kernel
operation per changed hook. Errors stay with their hook: the others proceed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum

from bpfunits.config import Config
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.kernel import attach as attaching
from bpfunits.kernel import bpf, probe
from bpfunits.kernel.bpffs import StateRoot, children, ensure_mounted, remove_tree
from bpfunits.kernel.observe import Attached
from bpfunits.kernel.probe import TcBackend, XdpBackend
from bpfunits.kernel.tcx import Placement
from bpfunits.kernel.xdp import XdpMode
from bpfunits.link.linker import link_chain
from bpfunits.order.chains import order_all
from bpfunits.order.graph import Chain, HookKey
from bpfunits.plan.diff import plan_all
from bpfunits.plan.model import Action, Desired, HookPlan
from bpfunits.reconcile import observed as observing
from bpfunits.reconcile.desired import Programs, blocked_by_broken_units, build_id, desired_chain
from bpfunits.reconcile.lock import exclusive
from bpfunits.reconcile.progcache import ProgramCache
from bpfunits.units.diagnostics import Diagnostic, Severity
from bpfunits.units.search import load_units


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

    @property
    def key(self) -> HookKey:
        return self.plan.key


@dataclass
class Result:
    hooks: list[HookResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unit_errors: dict[str, str] = field(default_factory=dict)  # units whose files or programs failed

    @property
    def changed(self) -> bool:
        return any(h.outcome in (Outcome.APPLIED, Outcome.PLANNED) for h in self.hooks)

    def xdp_programs(self) -> dict[str, frozenset[int]]:
        """Per interface with an XDP hook reconciled: bpfunits' program left on it (none when
        there is none)."""
        return {h.key.interface: frozenset({h.prog_id} if h.prog_id else ())
                for h in self.hooks if h.key.hook is Hook.XDP}

    @property
    def failed(self) -> bool:
        return any(h.outcome in (Outcome.BLOCKED, Outcome.FAILED) or h.errors for h in self.hooks) or any(
            d.severity is Severity.ERROR for d in self.diagnostics
        )


def attach_options(config: Config) -> attaching.AttachOptions:
    return attaching.AttachOptions(
        xdp_backend=XdpBackend(config.xdp_backend),
        xdp_mode=XdpMode(config.xdp_mode),
        tc_backend=TcBackend(config.tc_backend),
        placement=Placement(config.tc_position),
    )


def _no_tail_calls() -> str | None:
    """Why a component's tail call cannot run as that component alone here, or None."""
    features = probe.features()
    for feature in (probe.SUBPROG_TAIL_CALLS, probe.SUBPROG_TAIL_CALL_RETURNS):
        if not features.has(feature):
            return features.missing(feature)
    return None


def reconcile(config: Config, *, apply: bool, cache: ProgramCache | None = None) -> Result:
    """Plan (and with `apply`, carry out) every hook of this network namespace. Only apply
    changes anything: plan and status mount nothing, and create no folder and no pin.
    `cache`: the loaded programs of earlier reconciles, kept for the next (the daemon's); without
    it, every program is loaded and released again."""
    probe.features().require_supported()  # also raises RLIMIT_MEMLOCK where needed
    if apply:
        ensure_mounted()
    root = StateRoot(config.bpffs_root)
    with exclusive(config.lock_file), _cache_or_own(cache) as programs:
        root.check(create=apply)
        result = _Run(config, root, Programs(root, programs, config.file_policy), apply).go()
        programs.sweep()
        return result


@contextmanager
def _cache_or_own(cache: ProgramCache | None) -> Iterator[ProgramCache]:
    if cache is not None:
        yield cache
        return
    own = ProgramCache()
    try:
        yield own
    finally:
        own.close()


@dataclass
class _Run:
    config: Config
    root: StateRoot
    programs: Programs
    apply: bool
    live: dict[str, int] = field(default_factory=dict)
    chains: dict[HookKey, Chain] = field(default_factory=dict)
    desired: dict[HookKey, Desired] = field(default_factory=dict)
    states: dict[HookKey, observing.HookState] = field(default_factory=dict)

    def go(self) -> Result:
        loaded = load_units(self.config.units_dirs, policy=self.config.file_policy)
        self.live = observing.interfaces()
        ordering = order_all(loaded.units.values(), self.live)
        self.chains = ordering.chains
        self.states = observing.read_all(self.live, self.root)
        if self.apply:
            self.adopt()
        broken = {d.unit: d.message for d in loaded.errors if d.unit and d.unit not in loaded.units}

        for key, chain in self.chains.items():
            self.desired[key] = desired_chain(chain, self.programs, self.config.counters, self.config.takeover)
        for error in ordering.errors:
            self.desired[error.key] = Desired(error.key, None, (str(error),))
        for key, state in self.states.items():
            block = blocked_by_broken_units(key, state.observed.chain, broken)
            if block is not None:
                self.desired[key] = block

        result = Result(diagnostics=list(loaded.diagnostics))
        for plan in plan_all(self.desired.values(), [s.observed for s in self.states.values()]):
            state = self.states.get(plan.key)
            hook = self.carry_out(plan)
            hook.running, hook.foreign = (state.ours, state.observation.foreign) if state else (None, ())
            hook.ordered = self.chains[plan.key].names if plan.key in self.chains else ()
            result.hooks.append(hook)
        result.unit_errors = {**broken, **self.programs.errors}
        if self.apply:
            self.clean_up(result)
        return result

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
                            owner=str(self.root.path), no_tail_calls=_no_tail_calls()) as linked:
                prog_fd = linked.load()
            try:
                if not self.apply:
                    return HookResult(plan, done, prog_id=before_id)
                attached = self.switch(plan, ifindex, prog_fd, before)
                try:
                    self.programs.commit(chain.names)
                except BpfUnitsError as exc:
                    return HookResult(plan, done, (str(exc),), prog_id=attached.prog_id)
                return HookResult(plan, done, prog_id=attached.prog_id)
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

    def clean_up(self, result: Result) -> None:
        """Remove the maps of units that no longer run anywhere (only after their programs left
        the datapath), and the pins of this namespace's interfaces that are gone. While a hook
        could not be read, what it runs is unknown: no unit's maps go then."""
        live = {f"if{index}" for index in self.live.values()}
        for folder in children(self.root.netns_path()):
            if folder.name not in live:
                remove_tree(folder)
        if any(s.observed.errors for s in self.states.values()):
            return
        running = observing.units_pinned_elsewhere(self.root)
        for hook in result.hooks:
            chain = hook.plan.desired if hook.outcome in (Outcome.APPLIED, Outcome.UNCHANGED) else hook.plan.observed
            if hook.plan.action is Action.REMOVE and hook.outcome is Outcome.APPLIED:
                chain = None
            running.update(chain.units if chain else ())
        keep = {self.root.unit_path(name) for name in running}
        for folder in children(self.root.units_path):
            if folder not in keep:
                remove_tree(folder)
