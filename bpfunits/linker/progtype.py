"""What a program on a hook is loaded as, one table for the chains the linker builds and the unit
programs the loader and bcc load under them (a program array takes tail calls only from programs of
its first user's type and expected attach type)."""

from __future__ import annotations

from bpfunits.hooks import Hook
from bpfunits.hooks.events import EventHook
from bpfunits.sys import bpf

# Per kind of hook: the program type, and the expected attach type libbpf gives SEC("xdp") and
# SEC("tc") (a program array only takes tail calls from programs with its first user's).
_PROGRAMS = {
    False: (bpf.ProgType.XDP, int(bpf.AttachType.XDP)),
    True: (bpf.ProgType.SCHED_CLS, 0),
}


def prog_type_of(hook: Hook | EventHook) -> int:
    if isinstance(hook, EventHook):
        return hook.prog_type
    return _PROGRAMS[Hook(hook).is_tc][0]


def expected_attach_type_of(hook: Hook | EventHook) -> int:
    if isinstance(hook, EventHook):
        return hook.expected_attach_type
    return _PROGRAMS[Hook(hook).is_tc][1]
