"""What the linker knows of a main function's verdict (pure): flow.py, and the routes assemble()
gives each way out of an inlined component."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bpfunits.linker import asm
from bpfunits.linker.asm import FP, R0, R1, R2, R3, R4, Insn
from bpfunits.linker.component import Component, shape_of
from bpfunits.linker.flow import ExitFlow, exit_flow, writes
from bpfunits.linker.layout import CounterLayout, Mode, Part, assemble

PASS, DROP = 2, 1


def looks_at_byte(go_on: int = PASS, ends: int = DROP) -> tuple[Insn, ...]:
    """`r0 = go_on; if frame too short, or frame[14] != 0xff: return r0; return ends` (as clang
    compiles `int ret = go_on; ... return ret;`)."""
    return (
        Insn(asm.LDX | asm.MEM | asm.W, R2, R1, 0),
        Insn(asm.LDX | asm.MEM | asm.W, R3, R1, 4),
        asm.mov64_imm(R0, go_on),
        asm.mov64_reg(R4, R2),
        asm.add64_imm(R4, 15),
        Insn(asm.JMP | asm.JGT | asm.X, R4, R3, 3),  # 5: to the exit
        Insn(asm.LDX | asm.MEM | asm.B, R4, R2, 14),
        asm.jmp_imm(asm.JNE, R4, 0xFF, 1),  # 7: to the exit
        asm.mov64_imm(R0, ends),
        asm.exit_(),  # 9
    )


def test_the_verdict_on_each_way_into_an_exit():
    assert exit_flow(looks_at_byte()) == ExitFlow(jumps={5: PASS, 7: PASS}, exits={9: DROP})


def test_ways_that_disagree_make_the_verdict_unknown():
    code = (asm.mov64_imm(R0, PASS), asm.jmp_imm(asm.JEQ, R1, 0, 1), asm.mov64_imm(R0, DROP), asm.exit_())
    # The jump (r0 = PASS) is known; the fall-through into the exit is DROP.
    assert exit_flow(code) == ExitFlow(jumps={1: PASS}, exits={3: DROP})
    merged = (asm.mov64_imm(R0, PASS), asm.jmp_imm(asm.JEQ, R1, 0, 1), asm.mov64_imm(R0, DROP), asm.ja(0), asm.exit_())
    # Both ways meet at the ja before the exit: the only way into it, and r0 there is unknown.
    assert exit_flow(merged) == ExitFlow(jumps={3: None}, exits={})


def test_what_the_analysis_does_not_model_is_unknown():
    for write in (asm.call_helper(7), asm.add64_imm(R0, 1), asm.ldx_dw(R0, R1, 0), asm.mov64_reg(R0, R1),
                  asm.atomic_add_dw(FP, R0, -8), *asm.ld_map_fd(R0, 3)[:1]):
        code = (asm.mov64_imm(R0, PASS), write, *([Insn(0)] if write.is_ld_imm64 else []), asm.exit_())
        assert exit_flow(code).exits == {len(code) - 1: None}, write
    untouched = (asm.mov64_imm(R0, PASS), asm.add64_imm(R1, 1), *asm.ld_map_fd(R2, 3), asm.exit_())
    assert exit_flow(untouched).exits == {4: PASS}


def test_mov32_and_mov64_agree_on_the_low_32_bits():
    assert exit_flow((asm.mov64_imm(R0, -1), asm.exit_())).exits == {1: 0xFFFFFFFF}
    assert exit_flow((asm.mov32_imm(R0, -1), asm.exit_())).exits == {1: 0xFFFFFFFF}


def test_a_loop_reaches_its_fixpoint():
    loop = (asm.mov64_imm(R0, PASS), asm.add64_imm(R1, 1), asm.jmp_imm(asm.JLT, R1, 9, -2), asm.exit_())
    assert exit_flow(loop).exits == {3: PASS}
    changing = (asm.mov64_imm(R0, PASS), asm.mov64_imm(R0, DROP), asm.jmp_imm(asm.JLT, R1, 9, -3), asm.exit_())
    assert exit_flow(changing).exits == {3: DROP}


def test_writes_knows_calls_and_loads():
    assert writes(looks_at_byte(), R4) and not writes(looks_at_byte(), R1)
    assert writes((asm.call_helper(7), asm.exit_()), R1)
    assert not writes((asm.call_helper(7), asm.exit_()), asm.R6)
    assert writes((asm.atomic_add_dw(FP, R1, -8), asm.exit_()), R1)


insn = st.builds(Insn, st.integers(0, 255), st.integers(0, 15), st.integers(0, 15),
                 st.integers(-(2**15), 2**15 - 1), st.integers(-(2**31), 2**31 - 1))


@settings(max_examples=300, deadline=None)
@given(st.lists(insn, min_size=1, max_size=40))
def test_any_instructions_give_an_answer(code):
    # Components reach the linker after the verifier loaded them alone; whatever they are, the
    # analysis ends and names only exits and jumps into them.
    flow = exit_flow(tuple(code))
    assert all(code[pc].is_exit for pc in flow.exits)
    assert all(not code[pc].is_exit for pc in flow.jumps)


# --- routes -------------------------------------------------------------------------------

def part(code: tuple[Insn, ...], proceed=frozenset({PASS})) -> Part:
    return Part("u", shape_of(Component("u", asm.encode(list(code)), proceed)), proceed, Mode.INLINE, 0)


def compares_of_r0(insns) -> list[Insn]:
    return [i for i in insns if i.cls == asm.JMP32 and i.dst == R0]


def test_known_verdicts_skip_the_dispatch_and_the_context_reload():
    a = assemble([part(looks_at_byte()), part(looks_at_byte())], end_verdict=PASS)
    insns = a.insns
    assert compares_of_r0(insns) == []
    assert not any(i == asm.ldx_dw(R1, FP, i.off) for i in insns)  # r1 still holds the context
    first, second = a.part_starts
    assert second == first + 8  # the block that drops is moved off the way on (hotpath.py)
    assert first + 5 + insns[first + 5].off + 1 == second  # too short: goes on, straight to the next
    assert insns[first + 7].op == asm.JEQ  # 0xff: to the block that drops; anything else falls through
    exit_ = next(pc for pc, i in enumerate(insns) if i.is_exit)
    assert insns[exit_ - 1] == asm.mov64_imm(R0, PASS)  # the end verdict, after the last one goes on
    drop = first + 7 + insns[first + 7].off + 1
    assert drop > exit_ and insns[drop:drop + 2] == (asm.mov64_imm(R0, DROP), asm.exit_())  # r0 as it is


def test_an_unknown_way_still_goes_through_the_dispatch():
    code = (asm.mov64_imm(R0, PASS), asm.jmp_imm(asm.JEQ, R1, 0, 1), asm.ldx_dw(R0, R1, 0), asm.exit_())
    a = assemble([part(code), part(looks_at_byte())], end_verdict=PASS)
    insns = a.insns
    first = a.part_starts[0]
    assert compares_of_r0(insns) == [insns[first + 4]]  # the dispatch, after the exit
    assert first + 1 + insns[first + 1].off + 1 == a.part_starts[1]  # the known way skips it


def test_counted_ways_on_go_through_the_dispatch_and_ending_ones_are_counted_after_the_exit():
    counters = CounterLayout(7, 0, 4, (frozenset({PASS}), frozenset({PASS, 3}), frozenset({PASS})), reachable=3)
    parts = [part(looks_at_byte(), p) for p in counters.proceed_on]
    insns = assemble(parts, end_verdict=PASS, counters=counters).insns
    # Part 0's going on is derived (no count): no dispatch. Part 1 counts PASS on its way: its
    # dispatch stays. Part 2 is the last: its PASS is counted too.
    assert [(c.op, c.imm) for c in compares_of_r0(insns)] == [(asm.JEQ, PASS), (asm.JNE, 3), (asm.JNE, PASS)]
    slow = [pc for pc, i in enumerate(insns) if i == asm.mov32_reg(R2, R0)]
    exit_ = next(pc for pc, i in enumerate(insns) if i.is_exit and pc > len(parts) * 8)
    assert len(slow) == 3 and all(pc > exit_ for pc in slow)  # every part's DROP, counted after the main code
    # Each part's block that drops is moved there too, and falls into the count.
    assert all(insns[pc - 2:pc] == (asm.mov64_imm(R0, DROP), asm.ja(0)) for pc in slow)


def test_a_component_that_surely_ends_the_chain_keeps_the_dispatch():
    # Only DROP ever leaves it: routed by flow, nothing after it would be reachable, which the
    # verifier refuses. Through the dispatch, the next component stays where it is.
    ends = (asm.mov64_imm(R0, DROP), asm.exit_())
    insns = assemble([part(ends), part(looks_at_byte())], end_verdict=PASS).insns
    assert [(c.op, c.imm) for c in compares_of_r0(insns)] == [(asm.JNE, PASS)]


def test_an_exit_reached_only_by_jumps_keeps_them():
    # pc 1 is the only way into the exit at pc 4: sent elsewhere, that exit would be unreachable.
    code = (asm.mov64_imm(R0, PASS), asm.jmp_imm(asm.JEQ, R1, 0, 2), asm.mov64_imm(R0, DROP), asm.exit_(), asm.exit_())
    a = assemble([part(code), part(looks_at_byte())], end_verdict=PASS)
    first = a.part_starts[0]
    # The block that drops is moved off the way on, the jump inverted: the exit at pc 4 is now
    # reached by falling through, and leads to the dispatch right after it.
    assert a.insns[first + 1].op == asm.JNE and a.insns[first + 2] == asm.ja(0)
    assert compares_of_r0(a.insns) == [a.insns[first + 3]]


def reachable(insns: tuple[Insn, ...], end: int) -> set[int]:
    """The instructions of [0, end) reached from 0, as the verifier's check_cfg walks them."""
    seen: set[int] = set()
    work = [0]
    while work:
        pc = work.pop()
        if pc in seen or not 0 <= pc < end:
            continue
        seen.add(pc)
        i = insns[pc]
        if i.is_exit:
            continue
        if i.cls in (asm.JMP, asm.JMP32) and i.op not in (asm.CALL, asm.EXIT):
            work.append(pc + i.off + 1)
            if i.op != asm.JA:
                work.append(pc + 1)
            continue
        work.append(pc + (2 if i.is_ld_imm64 else 1))
    return seen | {pc + 1 for pc in seen if insns[pc].is_ld_imm64}


@st.composite
def component_code(draw) -> tuple[Insn, ...]:
    """Straight-line code ending in an exit, with verdicts set, calls, loads into r0, jumps to
    the last exit, and early exits that a jump leads around."""
    code: list[Insn] = []
    for kind in draw(st.lists(st.sampled_from(["mov", "jump", "call", "load", "early"]), max_size=8)):
        if kind == "mov":
            code.append(asm.mov64_imm(R0, draw(st.sampled_from([0, 1, 2, 3]))))
        elif kind == "call":
            code.append(asm.call_helper(7))
        elif kind == "load":
            code.append(asm.ldx_dw(R0, FP, -8))
        elif kind == "jump":
            code.append(Insn(asm.JMP | asm.JEQ, R1, 0, -1, draw(st.integers(0, 3))))  # to the last exit, below
        else:
            code += [asm.jmp_imm(asm.JNE, R1, draw(st.integers(0, 3)), 2),
                     asm.mov64_imm(R0, draw(st.sampled_from([0, 1, 2, 3]))), asm.exit_()]
    code.append(asm.exit_())
    last = len(code) - 1
    return tuple(i.with_(off=last - pc - 1) if i.off == -1 and i.cls == asm.JMP else i for pc, i in enumerate(code))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(component_code(), st.frozensets(st.sampled_from([0, 1, 2, 3]), min_size=1)),
                min_size=1, max_size=5), st.booleans())
def test_every_instruction_of_a_chain_stays_reachable(components, counted):
    # The verifier refuses a program with an instruction no way leads to: whatever the routes
    # take past the dispatch, what remains is reached.
    parts = [part(code, proceed) for code, proceed in components]
    counters = CounterLayout(7, 0, 3, tuple(p.proceed_on for p in parts), len(parts)) if counted else None
    a = assemble(parts, end_verdict=PASS, counters=counters)
    end = a.func_starts[1] if len(a.func_starts) > 1 else len(a.insns)
    assert reachable(a.insns, end) == set(range(end))
