"""What a long-running reconciler (the daemon) keeps from one reconcile to the next."""

from __future__ import annotations

from dataclasses import dataclass, field

from bpfunits.kernel.observe import ProgramFacts
from bpfunits.reconcile.memory import Memory
from bpfunits.reconcile.progcache import ProgramCache


@dataclass
class Node:
    """Loaded unit programs, facts about the kernel's programs, and the memory of every hook of
    one network namespace and state root. A CLI reconcile makes one for itself and closes it."""

    programs: ProgramCache = field(default_factory=ProgramCache)
    facts: ProgramFacts = field(default_factory=ProgramFacts)
    memory: Memory = field(default_factory=Memory)

    def close(self) -> None:
        self.programs.close()
