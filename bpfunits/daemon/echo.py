"""The daemon's own XDP changes, which the netlink monitor reports like anyone else's (a swap made
through a bpf_link shows at the next interface listing): not a reason to reconcile again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bpfunits.daemon.trigger import Trigger


@dataclass
class OwnXdp:
    """The XDP programs each interface ran after the daemon's reconciles, by interface name.
    Program ids are never reused while the kernel runs, and netlink names no links: a program id
    is what identifies what the daemon attached."""

    _left: dict[str, frozenset[int]] = field(default_factory=dict)

    def remember(self, left: Mapping[str, frozenset[int]]) -> None:
        """What a reconcile left: every XDP hook it reconciled, with the programs on it (none
        where it removed its chain). A reconcile looks only at some hooks: the others keep what
        an earlier one left."""
        self._left.update(left)

    def is_echo(self, trigger: Trigger) -> bool:
        """Whether `trigger` only reports the XDP programs the last reconcile left."""
        return (trigger.reason == "xdp" and trigger.xdp_progs is not None
                and self._left.get(trigger.interface) == trigger.xdp_progs)
