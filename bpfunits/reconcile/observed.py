"""What the kernel runs on each hook, read from the kernel alone: observation plus chain manifests."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from bpfunits.hooks import Hook
from bpfunits.kernel.bpffs import StateRoot
from bpfunits.kernel.observe import Attached, Observation, observe
from bpfunits.link.manifest import read_manifest
from bpfunits.order.graph import HookKey
from bpfunits.plan.model import ChainState, Component, Observed


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


def read_hook(key: HookKey, ifindex: int, root: StateRoot) -> HookState:
    observation = observe(ifindex, key.hook, root)
    mine = observation.ours
    chain = _chain_of(mine[0]) if mine else None
    foreign = tuple(f"{p.name or '?'} (id {p.prog_id})" for p in observation.foreign)
    return HookState(key, ifindex, observation, Observed(key, chain, foreign))


def read_all(live: dict[str, int], root: StateRoot) -> dict[HookKey, HookState]:
    states = {}
    for name, ifindex in sorted(live.items()):
        for hook in Hook:
            state = read_hook(HookKey(name, hook), ifindex, root)
            if state.observation.programs:
                states[state.key] = state
    return states


def _chain_of(program: Attached) -> ChainState:
    manifest = read_manifest(program.prog_id)
    if manifest is None:
        # Ours by its pin, but carrying no manifest: unknown content, so never "unchanged".
        return ChainState((), "unknown")
    return ChainState(
        tuple(Component(e.unit, e.sha256, e.tag, tuple(sorted(e.proceed_on))) for e in manifest.components),
        manifest.version,
    )
