"""The hooks bpfunits chains programs on, and the verdicts each hook's programs return."""

from __future__ import annotations

from enum import Enum


class Hook(str, Enum):
    XDP = "xdp"
    TC_INGRESS = "tc-ingress"
    TC_EGRESS = "tc-egress"

    @property
    def is_tc(self) -> bool:
        return self is not Hook.XDP

    @property
    def verdicts(self) -> dict[str, int]:
        """Verdict names this hook's programs may return, with their return codes."""
        return TC_VERDICTS if self.is_tc else XDP_VERDICTS

    @property
    def default_proceed_on(self) -> frozenset[str]:
        # XDP: only a passed packet goes on. tc: TC_ACT_OK and TCX_NEXT/TC_ACT_UNSPEC,
        # the two ways a classifier says "not my business".
        return frozenset({"ok", "next"}) if self.is_tc else frozenset({"pass"})

    @property
    def chain_end_verdict(self) -> int:
        """What a chain returns when every component let the packet go on: XDP passes it to
        the stack; tc returns TCX_NEXT so programs attached after the chain still run."""
        return TC_VERDICTS["next"] if self.is_tc else XDP_VERDICTS["pass"]


XDP_VERDICTS: dict[str, int] = {"aborted": 0, "drop": 1, "pass": 2, "tx": 3, "redirect": 4}

# TC_ACT_* from linux/pkt_cls.h; "next" is TC_ACT_UNSPEC, which tcx calls TCX_NEXT.
TC_VERDICTS: dict[str, int] = {
    "next": -1,
    "ok": 0,
    "reclassify": 1,
    "shot": 2,
    "pipe": 3,
    "stolen": 4,
    "queued": 5,
    "repeat": 6,
    "redirect": 7,
    "trap": 8,
}
