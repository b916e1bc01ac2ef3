"""tc attachment through tcx links (kernel 6.6+): many programs per hook, each a link, in order.

Replacing and detaching go through `pins` (update/detach the pinned link).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from bpfunits.hooks import Hook
from bpfunits.state import pins
from bpfunits.sys import bpf


class TcPosition(str, Enum):
    """Where a new link goes among the programs already on the hook. The kernel dropped
    BPF_F_FIRST/LAST, so this holds at attach time only: others may attach before or after."""

    FIRST = "first"
    LAST = "last"

    @property
    def flags(self) -> int:
        # BEFORE with no relative object prepends; no flags appends.
        return bpf.BPF_F_BEFORE if self is TcPosition.FIRST else 0


def attach_type(hook: Hook) -> bpf.AttachType:
    if hook is Hook.TC_INGRESS:
        return bpf.AttachType.TCX_INGRESS
    if hook is Hook.TC_EGRESS:
        return bpf.AttachType.TCX_EGRESS
    raise ValueError(f"{hook.value} is not a tc hook")


def attach(
    ifindex: int, hook: Hook, prog_fd: int, hook_dir: Path, position: TcPosition, expected_revision: int = 0
) -> int:
    """Attach through a tcx link pinned in `hook_dir`; returns the link id. A non-zero
    `expected_revision` makes the attach fail with ESTALE if the hook changed since."""
    return pins.create_link(
        prog_fd, ifindex, attach_type(hook), hook_dir, flags=position.flags, expected_revision=expected_revision
    )


def query(ifindex: int, hook: Hook) -> bpf.Query:
    """The programs on the hook in run order, their link ids (0: attached without a link) and
    the hook's revision."""
    return bpf.prog_query(ifindex, attach_type(hook))
