"""Why a reconcile runs."""

from __future__ import annotations

from dataclasses import dataclass, field

# How each reason reads in the log line "reconcile: <phrase> (<detail>)".
_PHRASES = {
    "start": "start",
    "files": "files changed",
    "interfaces": "interfaces changed",
    "xdp": "XDP program changed by someone else",
    "timer": "periodic resync",
    "sighup": "SIGHUP",
}


@dataclass(frozen=True)
class Trigger:
    reason: str  # "start" | "files" | "interfaces" | "xdp" | "timer" | "sighup"
    detail: str = ""
    # "xdp" only: the interface, and the XDP program ids on it now (what the monitor saw).
    interface: str = field(default="", compare=False)
    xdp_progs: frozenset[int] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        phrase = _PHRASES.get(self.reason, self.reason)
        return f"{phrase} ({self.detail})" if self.detail else phrase
