"""Hooks that run one program per unit, with no chain: tracepoints, kprobes, uprobes,
fentry/fexit, cgroup hooks. A unit on one of them is attached alone, through a bpf_link
(hooks/eventlink.py); only cgroup hooks run their programs in an order bpfunits can set (where the
kernel has cgroup mprog)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from bpfunits.sys import bpf


class EventKind(str, Enum):
    TRACEPOINT = "tracepoint"
    RAW_TRACEPOINT = "raw_tracepoint"
    KPROBE = "kprobe"
    KRETPROBE = "kretprobe"
    UPROBE = "uprobe"
    URETPROBE = "uretprobe"
    FENTRY = "fentry"
    FEXIT = "fexit"
    CGROUP_SKB_INGRESS = "cgroup-skb-ingress"
    CGROUP_SKB_EGRESS = "cgroup-skb-egress"
    CGROUP_SOCK_CREATE = "cgroup-sock-create"

    @property
    def is_cgroup(self) -> bool:
        return self.value.startswith("cgroup-")


# Per kind: the program type it loads as, and the expected attach type (0: none).
PROGRAMS: dict[EventKind, tuple[int, int]] = {
    EventKind.TRACEPOINT: (bpf.ProgType.TRACEPOINT, 0),
    EventKind.RAW_TRACEPOINT: (bpf.ProgType.RAW_TRACEPOINT, 0),
    EventKind.KPROBE: (bpf.ProgType.KPROBE, 0),
    EventKind.KRETPROBE: (bpf.ProgType.KPROBE, 0),
    EventKind.UPROBE: (bpf.ProgType.KPROBE, 0),
    EventKind.URETPROBE: (bpf.ProgType.KPROBE, 0),
    EventKind.FENTRY: (bpf.ProgType.TRACING, 24),  # BPF_TRACE_FENTRY
    EventKind.FEXIT: (bpf.ProgType.TRACING, 25),  # BPF_TRACE_FEXIT
    EventKind.CGROUP_SKB_INGRESS: (bpf.ProgType.CGROUP_SKB, bpf.AttachType.CGROUP_INET_INGRESS),
    EventKind.CGROUP_SKB_EGRESS: (bpf.ProgType.CGROUP_SKB, bpf.AttachType.CGROUP_INET_EGRESS),
    EventKind.CGROUP_SOCK_CREATE: (bpf.ProgType.CGROUP_SOCK, bpf.AttachType.CGROUP_INET_SOCK_CREATE),
}

# What follows "KIND:" for each kind that names its target in Hook= (cgroup hooks take Cgroup=).
_TARGETS = {
    EventKind.TRACEPOINT: (r"[A-Za-z0-9_]+/[A-Za-z0-9_]+", "tracepoint:CATEGORY/NAME"),
    EventKind.RAW_TRACEPOINT: (r"[A-Za-z0-9_]+", "raw_tracepoint:NAME"),
    EventKind.KPROBE: (r"[A-Za-z0-9_.]+(\+(0|[1-9][0-9]*|0x[0-9a-fA-F]+))?", "kprobe:FUNCTION[+OFFSET]"),
    EventKind.KRETPROBE: (r"[A-Za-z0-9_.]+", "kretprobe:FUNCTION"),
    EventKind.UPROBE: (r"/[^:\s\0]+:[A-Za-z_][A-Za-z0-9_.@]*", "uprobe:/PATH:SYMBOL"),
    EventKind.URETPROBE: (r"/[^:\s\0]+:[A-Za-z_][A-Za-z0-9_.@]*", "uretprobe:/PATH:SYMBOL"),
    EventKind.FENTRY: (r"[A-Za-z0-9_]+", "fentry:FUNCTION"),
    EventKind.FEXIT: (r"[A-Za-z0-9_]+", "fexit:FUNCTION"),
}

SPELLINGS: tuple[str, ...] = (*(spelling for _, spelling in _TARGETS.values()),
                              *(k.value for k in EventKind if k.is_cgroup))


class EventHookError(ValueError):
    pass


@dataclass(frozen=True)
class EventHook:
    """One event hook: a kind and its target (a tracepoint, function, binary:symbol, or cgroup
    folder)."""

    kind: EventKind
    target: str

    @property
    def value(self) -> str:
        """As Hook= spells it (a cgroup hook with its folder)."""
        return f"{self.kind.value}:{self.target}"

    @property
    def prog_type(self) -> int:
        return PROGRAMS[self.kind][0]

    @property
    def expected_attach_type(self) -> int:
        return PROGRAMS[self.kind][1]

    @property
    def kernel_function(self) -> str | None:
        """fentry, fexit: the kernel function whose BTF type the program is loaded against."""
        return self.target if self.kind in (EventKind.FENTRY, EventKind.FEXIT) else None

    @property
    def orderable(self) -> bool:
        """Whether programs on this hook run in an order bpfunits can set: cgroup hooks, where the
        kernel places a link before or after another (cgroup mprog, probe.CGROUP_MPROG); elsewhere
        they run in attach order. Tracepoints and probes run theirs in no order bpfunits sets."""
        return self.kind.is_cgroup

    def __str__(self) -> str:
        return self.value


def parse_event_hook(text: str, cgroup: str | None = None) -> EventHook:
    """Hook= of an event unit (Cgroup= for the cgroup hooks)."""
    kind_name, sep, target = text.partition(":")
    try:
        kind = EventKind(kind_name)
    except ValueError:
        raise EventHookError(f"{text} is not a hook") from None
    if kind.is_cgroup:
        if sep:
            raise EventHookError(f"{kind.value} takes its cgroup from Cgroup=, not after a colon")
        if not cgroup or not cgroup.startswith("/"):
            raise EventHookError(f"{kind.value} needs Cgroup=/sys/fs/cgroup/... (an absolute path)")
        return EventHook(kind, cgroup)
    pattern, spelling = _TARGETS[kind]
    if not re.fullmatch(pattern, target):
        raise EventHookError(f"{text} does not read as {spelling}")
    return EventHook(kind, target)

