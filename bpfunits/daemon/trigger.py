"""Why a reconcile runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from bpfunits.reconcile.memory import EVERYTHING, Changes

# How each reason reads in the log line "reconcile: <phrase> (<detail>)".
_PHRASES = {
    "start": "start",
    "files": "files changed",
    "interfaces": "interfaces changed",
    "xdp": "XDP program changed by someone else",
    "timer": "periodic resync",
    "sighup": "SIGHUP",
    "retry": "retry of failed hooks",
}

# What each reason makes dirty when its trigger does not say more. Unit files (and, at a
# resync, the objects they name) are read again and every hook's inputs compared with those it
# last built from; an interface's or a hook's event reads only those.
_CHANGES = {
    "start": EVERYTHING,
    "sighup": EVERYTHING,
    "timer": Changes(kernel=True, files=True),
    "files": Changes(files=True),
}


@dataclass(frozen=True)
class Trigger:
    reason: str  # "start" | "files" | "interfaces" | "xdp" | "timer" | "sighup" | "retry"
    detail: str = ""
    # "xdp" only: the interface, and the XDP program ids on it now (what the monitor saw).
    interface: str = field(default="", compare=False)
    xdp_progs: frozenset[int] | None = field(default=None, compare=False)
    # What it makes dirty; None: what its reason does.
    dirty: Changes | None = field(default=None, compare=False)

    @property
    def changes(self) -> Changes:
        return self.dirty if self.dirty is not None else _CHANGES.get(self.reason, Changes())

    def __str__(self) -> str:
        phrase = _PHRASES.get(self.reason, self.reason)
        return f"{phrase} ({self.detail})" if self.detail else phrase
