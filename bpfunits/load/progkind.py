"""Whether a program in an object is written for a hook, from what the object says of it: its
section (libbpf's type from it, and prefixes libbpf 1.1 does not know, like L3AF's "tc-ingress")
and the BTF type of its context argument. A tc program on an XDP hook would load and then return
0, XDP_ABORTED, for every frame."""

from __future__ import annotations

import re

from bpfunits.hooks import Hook
from bpfunits.hooks.events import EventHook
from bpfunits.sys import bpf
from bpfunits.load.objworker import ProgramFacts

_SECTION_KINDS = {"xdp": "xdp", "tc": "tc", "tcx": "tc", "classifier": "tc", "action": "tc"}
_CONTEXT_KINDS = {"struct xdp_md": "xdp", "struct __sk_buff": "tc"}


def _libbpf_fits(prog_type: int, hook: Hook) -> bool:
    if hook.is_tc:
        return prog_type in (bpf.ProgType.SCHED_CLS, bpf.ProgType.SCHED_ACT)
    return prog_type == bpf.ProgType.XDP


def type_name(prog_type: int) -> str:
    try:
        return bpf.ProgType(prog_type).name.lower()
    except ValueError:
        return f"type {prog_type}"


def misfit(program: ProgramFacts, hook: Hook | EventHook) -> str | None:
    """Why `program` cannot run on `hook` ("is in section 'tc-ingress', a tc program"), naming
    what says so; None when nothing does (a section nobody knows is typed from the hook)."""
    if isinstance(hook, EventHook):
        known = program.libbpf_type != bpf.ProgType.UNSPEC
        if known and program.libbpf_type != hook.prog_type:
            return f"is in section {program.section!r}, a {type_name(program.libbpf_type)} program"
        return None
    hook = Hook(hook)
    kind = "tc" if hook.is_tc else "xdp"
    if program.libbpf_type != bpf.ProgType.UNSPEC and not _libbpf_fits(program.libbpf_type, hook):
        return f"is in section {program.section!r}, a {type_name(program.libbpf_type)} program"
    # The first word: "tc-ingress", "tc/ingress", "xdp_ratelimiting", but not "tcp_filter".
    section_kind = _SECTION_KINDS.get(re.split(r"[-/_.]", program.section, maxsplit=1)[0])
    if section_kind not in (None, kind):
        return f"is in section {program.section!r}, a {section_kind} program"
    context_kind = _CONTEXT_KINDS.get(program.context or "")
    if context_kind not in (None, kind):
        return f"takes a {program.context} * context (BTF), a {context_kind} program"
    return None
