"""What a reconciler remembers between reconciles, per hook: what the hook's chain was built from
and what it left in the kernel there; and, for a hook that keeps failing, when to try it again.

With it, a reconcile looks only at what an event touched (its dirty hooks), and the periodic
resync compares cheap reads of every hook with what was left there instead of rebuilding them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from bpfunits.order.graph import HookKey

# Retries of a failing hook: after 1 s, then twice as long each time, at most 5 minutes apart.
RETRY_FIRST = 1.0
RETRY_CAP = 300.0


@dataclass(frozen=True)
class Changes:
    """What happened since the last reconcile, besides unit files (whose effect is found by
    comparing each hook's inputs with the remembered ones): the reconcile's dirty hooks."""

    everything: bool = False  # start, reload, lost events: look at every hook
    interfaces: frozenset[str] = frozenset()  # appeared, vanished or renamed: all their hooks
    hooks: frozenset[HookKey] = frozenset()  # someone else changed what runs there
    kernel: bool = False  # the resync: compare every hook's programs with what was left there
    files: bool = False  # unit files may have changed: read them all, order where those that changed are

    def __or__(self, other: Changes) -> Changes:
        return Changes(self.everything or other.everything, self.interfaces | other.interfaces,
                       self.hooks | other.hooks, self.kernel or other.kernel, self.files or other.files)

    @property
    def narrow(self) -> bool:
        """Only the named interfaces and hooks (and retries) changed: nothing else need be read."""
        return not (self.everything or self.kernel or self.files)


EVERYTHING = Changes(everything=True)


@dataclass(frozen=True)
class Left:
    """One hook after a reconcile."""

    inputs: Hashable  # what its desired chain was built from; None: no unit wants the hook
    programs: frozenset[int]  # the ids of the programs on it (bpfunits' and others')
    units: tuple[str, ...]  # the units of bpfunits' chain running there


@dataclass(frozen=True)
class Retry:
    failures: int  # in a row
    at: float  # time.monotonic() of the next try
    error: str  # the last one


@dataclass
class Memory:
    hooks: dict[HookKey, Left] = field(default_factory=dict)
    retries: dict[HookKey, Retry] = field(default_factory=dict)
    complete: bool = False  # an apply looked at every hook: from then on, only dirty ones
    unit_inputs: dict[str, Hashable] = field(default_factory=dict)  # per unit, from the last reconcile
    interfaces: dict[str, int] = field(default_factory=dict)  # name -> ifindex, at the last reconcile

    def record(self, key: HookKey, left: Left, error: str | None, now: float) -> None:
        """What a reconcile left on `key`; `error` when it failed there (the hook is retried
        with exponential backoff), None when it succeeded."""
        if left.inputs is None and not left.programs and not left.units:
            self.hooks.pop(key, None)
        else:
            self.hooks[key] = left
        if error is None:
            self.retries.pop(key, None)
            return
        failures = self.retries[key].failures + 1 if key in self.retries else 1
        delay = min(RETRY_CAP, RETRY_FIRST * 2 ** (failures - 1))
        self.retries[key] = Retry(failures, now + delay, error)

    def forget_interfaces(self, live: Iterable[str]) -> None:
        """Drop the hooks of interfaces that are gone: they run nothing any more."""
        live = set(live)
        for table in (self.hooks, self.retries):
            for key in [k for k in table if k.interface not in live]:
                del table[key]

    def waiting(self, key: HookKey, now: float) -> bool:
        """Whether `key` failed and its next try is not due yet."""
        retry = self.retries.get(key)
        return retry is not None and retry.at > now

    def due(self, now: float) -> set[HookKey]:
        return {k for k, r in self.retries.items() if r.at <= now}

    def running_units(self) -> set[str]:
        return {u for left in self.hooks.values() for u in left.units}

    def programs(self) -> set[int]:
        return {p for left in self.hooks.values() for p in left.programs}
