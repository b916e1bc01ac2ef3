"""What a long-running reconciler (the daemon) keeps from one reconcile to the next."""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass, field

from bpfunits.sys import bpf
from bpfunits.hooks.observe import ProgramFacts
from bpfunits.order.graph import HookKey
from bpfunits.reconcile.memory import Memory
from bpfunits.reconcile.progcache import ProgramCache
from bpfunits.units.search import LoadResult


@dataclass
class HeldLinks:
    """A file descriptor on each bpf_link of bpfunits' chains (XDP links, tcx). Pins are not
    the only reference to them then: while the daemon runs, removing the state root (rm -rf)
    detaches nothing, and the next reconcile pins them again. Netlink XDP programs and cls_bpf
    filters do not depend on pins at all."""

    _fds: dict[HookKey, tuple[int, int]] = field(default_factory=dict)  # key -> (link id, fd)

    def hold(self, key: HookKey, link_id: int | None) -> None:
        """Hold link `link_id` for `key` (None: nothing there to hold), releasing another."""
        held = self._fds.get(key)
        if held is not None and held[0] == link_id:
            return
        self.release(key)
        if link_id is None:
            return
        with suppress(bpf.BpfError):  # gone meanwhile: the next look at the hook finds out
            self._fds[key] = (link_id, bpf.link_get_fd_by_id(link_id))

    def release(self, key: HookKey) -> None:
        held = self._fds.pop(key, None)
        if held is not None:
            os.close(held[1])

    def keys(self) -> set[HookKey]:
        return set(self._fds)

    def close(self) -> None:
        for key in list(self._fds):
            self.release(key)


@dataclass
class Node:
    """Loaded unit programs, facts about the kernel's programs, and the memory of every hook of
    one network namespace and state root. A CLI reconcile makes one for itself and closes it."""

    programs: ProgramCache = field(default_factory=ProgramCache)
    facts: ProgramFacts = field(default_factory=ProgramFacts)
    memory: Memory = field(default_factory=Memory)
    links: HeldLinks = field(default_factory=HeldLinks)
    units: LoadResult | None = None  # the unit files as last read: an interface's event reads them not

    def close(self) -> None:
        self.programs.close()
        self.links.close()
