"""What the planner compares: the chain a hook should run and the chain it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from bpfunits.order.graph import HookKey


@dataclass(frozen=True)
class ChainMember:
    """One unit's place in a chain, as far as the datapath is concerned: two chains whose
    components are equal run the same code in the same order with the same dispatch."""

    unit: str
    sha256: str  # digest of the program's object or source file
    tag: str  # the kernel's program tag: catches code changes the file digest cannot (Define=)
    proceed_on: tuple[int, ...]  # verdict codes, sorted
    # Maps that hold state, (name, id). Wanted: those pinned for the unit now; running: those the
    # chain uses. Not part of equality: a pin that is gone is pinned again from the running chain,
    # and only a running map other than the pinned one asks for a rebuild (see plan.diff).
    maps: tuple[tuple[str, int], ...] = field(default=(), compare=False)
    # Global= (name, value): set in the program's data sections, which neither digest nor tag sees.
    globals: tuple[tuple[str, str], ...] = ()
    # Every global's value in the object as compiled, for plan lines (wanted chains only).
    compiled: tuple[tuple[str, str], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ChainState:
    """A chain of components, plus how it was built (linker format, counters on or off):
    a change there alone also needs a new program."""

    components: tuple[ChainMember, ...]
    build: str

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(c.unit for c in self.components)


@dataclass(frozen=True)
class Desired:
    key: HookKey
    chain: ChainState | None  # None: the hook could not be ordered or built; see errors
    errors: tuple[str, ...] = ()
    takeover: bool = False  # a foreign program in the way may be replaced
    notes: tuple[str, ...] = ()  # what building it changes besides the chain (a pinned map reset)


@dataclass(frozen=True)
class Observed:
    key: HookKey
    chain: ChainState | None  # bpfunits' own chain, read back from its manifest; None if none
    foreign: tuple[str, ...] = ()  # programs on the hook that bpfunits did not attach
    errors: tuple[str, ...] = ()  # the hook could not be read: what runs there is unknown


class Action(str, Enum):
    UNCHANGED = "unchanged"
    CREATE = "create"
    REPLACE = "replace"
    REMOVE = "remove"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class HookPlan:
    key: HookKey
    action: Action
    desired: ChainState | None
    observed: ChainState | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    moved: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def changes_kernel(self) -> bool:
        return self.action in (Action.CREATE, Action.REPLACE, Action.REMOVE)
