"""The daemon's own XDP changes, which the netlink monitor reports like anyone else's (a swap made
through a bpf_link shows at the next interface listing): not a reason to reconcile again."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from bpfunits.daemon.trigger import Trigger

# How many of its latest XDP states per interface the daemon knows as its own. A listing taken
# between two quick reconciles arrives after the second: it shows the first one's program.
REMEMBERED = 4


@dataclass
class OwnXdp:
    """The XDP programs each interface ran after the daemon's latest reconciles, by interface
    name. Program ids are never reused while the kernel runs, and netlink names no links: a
    program id is what identifies what the daemon attached."""

    _left: dict[str, deque[frozenset[int]]] = field(default_factory=dict)

    def remember(self, left: Mapping[str, frozenset[int]]) -> None:
        """What a reconcile left: every XDP hook it reconciled, with the programs on it (none
        where it removed its chain). A reconcile looks only at some hooks: the others keep what
        an earlier one left."""
        for name, programs in left.items():
            states = self._left.setdefault(name, deque(maxlen=REMEMBERED))
            if not states or states[-1] != programs:
                states.append(programs)

    def is_echo(self, trigger: Trigger) -> bool:
        """Whether `trigger` only reports XDP programs that one of the latest reconciles left: the
        last one's, or an earlier one's seen late. Were that earlier program really back (someone
        else put it there), the resync finds it."""
        return (trigger.reason == "xdp" and trigger.xdp_progs is not None
                and trigger.xdp_progs in self._left.get(trigger.interface, ()))
