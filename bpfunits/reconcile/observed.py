"""What the kernel runs on each hook, read from the kernel alone: observation plus chain manifests."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.load import mappins
from bpfunits.state import pins
from bpfunits.sys import bpf
from bpfunits.state.bpffs import StateRoot, children
from bpfunits.hooks.observe import Attached, Observation, Observer, ProgramFacts
from bpfunits.linker.manifest import read_manifest
from bpfunits.order.graph import HookKey
from bpfunits.plan.model import ChainState, ChainMember, Observed


@dataclass(frozen=True)
class HookState:
    key: HookKey
    ifindex: int
    observation: Observation
    observed: Observed

    @property
    def ours(self) -> Attached | None:
        mine = self.observation.ours
        return mine[0] if mine else None


def interfaces() -> dict[str, int]:
    """The live interfaces of this network namespace, name → ifindex."""
    return {name: index for index, name in socket.if_nameindex()}


def read_hook(key: HookKey, ifindex: int, observer: Observer) -> HookState:
    observation = observer.observe(ifindex, key.hook)
    mine = observation.ours
    chain = _chain_of(mine[0], observer.facts) if mine else None
    foreign = tuple(f"{p.name or '?'} (id {p.prog_id})" for p in observation.foreign)
    return HookState(key, ifindex, observation, Observed(key, chain, foreign))


def read_all(live: dict[str, int], observer: Observer, only: Iterable[HookKey] | None = None
             ) -> dict[HookKey, HookState]:
    """Every hook (of `only`, when given) that runs something, or could not be read: such a hook
    (its interface went away meanwhile, a pin where its folder belongs) is an error of its own."""
    keys = sorted(HookKey(name, hook) for name in live for hook in Hook) if only is None else sorted(only)
    states = {}
    for key in keys:
        ifindex = live.get(key.interface)
        if ifindex is None:
            continue  # gone: it runs nothing
        try:
            state = read_hook(key, ifindex, observer)
        except (BpfUnitsError, OSError) as e:
            unread = Observed(key, None, errors=(f"reading what runs on {key} failed: {e}",))
            states[key] = HookState(key, ifindex, Observation(ifindex, key.hook, None, ()), unread)
            continue
        if state.observation.programs:
            states[key] = state
    return states


@dataclass(frozen=True)
class Elsewhere:
    """What the root pins for other network namespaces (and in the layout before namespaced
    folders)."""

    units: set[str]  # the units of the chains running there: their maps are not ours to remove
    defunct: list[Path]  # hook folders whose link lost its interface (it, or its namespace, is gone)


def pinned_elsewhere(root: StateRoot) -> Elsewhere:
    mine = root.netns_path()
    found = Elsewhere(set(), [])
    for folder in children(root.hooks_path):
        if folder == mine:
            continue
        try:
            interfaces = [folder] if folder.name.startswith("if") else children(folder)
            hook_dirs = [h for i in interfaces for h in children(i)]
        except BpfUnitsError:
            continue  # not a folder: it pins nothing
        for hook_dir in hook_dirs:
            try:
                link = pins.link_info(hook_dir)
                prog = pins.prog_id(hook_dir)
            except BpfUnitsError:
                continue  # not a hook folder of ours: nothing it pins counts
            if link is not None and link.ifindex == 0 and prog is None:
                # A link's interface, once gone, never comes back: nothing runs there. (A
                # netlink or cls_bpf program's pin cannot tell; it stays.)
                found.defunct.append(hook_dir)
                continue
            for prog_id in (p for p in (link.prog_id if link else None, prog) if p):
                try:
                    manifest = read_manifest(prog_id)
                except bpf.BpfError:
                    continue  # gone meanwhile
                if manifest is not None:
                    found.units.update(e.unit for e in manifest.components)
    return found


def _chain_of(program: Attached, facts: ProgramFacts) -> ChainState:
    manifest = facts.manifest(program.prog_id)
    if manifest is None:
        # Ours by its pin, but carrying no manifest: unknown content, so never "unchanged".
        return ChainState((), "unknown")
    return ChainState(
        tuple(ChainMember(e.unit, e.sha256, e.tag, tuple(sorted(e.proceed_on)),
                        tuple((n, i) for n, i in e.maps if mappins.holds_state(n)), e.globals)
              for e in manifest.components),
        manifest.version,
    )
