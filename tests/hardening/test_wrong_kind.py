"""Issue 11 #10: a program of the wrong kind for its hook is refused, naming what says so (the section
or the BTF type of its context) and the hook. An L3AF tc program (SEC("tc-ingress"), unknown to
libbpf 1.1) on an XDP hook loaded, and then returned 0 = XDP_ABORTED for every frame."""

from __future__ import annotations

import pytest

from bpfunits.hooks import Hook
from bpfunits.sys import bpf
from bpfunits.load.load import ProgramNotFound, WrongProgramType, load_object_program


@pytest.mark.parametrize(
    ("name", "hook", "why"),
    [
        ("l3af_tc", Hook.XDP, "is in section 'tc-ingress', a tc program"),
        ("skb_context", Hook.XDP, "takes a struct __sk_buff * context (BTF), a tc program"),
        ("xdp_context", Hook.TC_INGRESS, "takes a struct xdp_md * context (BTF), a xdp program"),
        ("xdp_context", Hook.TC_EGRESS, "takes a struct xdp_md * context (BTF), a xdp program"),
    ],
)
def test_wrong_kind_program_is_refused_naming_both(bpf_objects, name, hook, why):
    path = bpf_objects / "wrongkind.bpf.o"
    with pytest.raises(WrongProgramType) as caught:
        load_object_program(path, hook, None, name=name, label="unit w")
    assert str(caught.value) == f"unit w: program {name!r} in {path} {why}, which cannot run on the {hook.value} hook"


def test_wrong_kind_programs_are_not_chosen_without_a_name(bpf_objects):
    path = bpf_objects / "wrongkind.bpf.o"
    with pytest.raises(ProgramNotFound, match="holds 2 programs for the tc-ingress hook, so Name= must say which"):
        load_object_program(path, Hook.TC_INGRESS, None)


@pytest.mark.kernel
@pytest.mark.parametrize(("name", "hook"), [("l3af_tc", Hook.TC_INGRESS), ("xdp_context", Hook.XDP)])
def test_wrong_kind_check_lets_the_right_kind_load(bpf_objects, name, hook):
    with load_object_program(bpf_objects / "wrongkind.bpf.o", hook, None, name=name) as prog:
        assert prog.prog_type == (bpf.ProgType.SCHED_CLS if hook.is_tc else bpf.ProgType.XDP)
