"""Chain assembly (pure): where code goes and how references are rewritten."""

from __future__ import annotations

import pytest

from bpfunits.linker import asm
from bpfunits.linker.asm import FP, R0, R1, R2, R3, R6, Insn
from bpfunits.linker.component import Component, LinkError, shape_of
from bpfunits.linker.layout import CounterLayout, Mode, Part, assemble


def part(*insns: Insn, proceed=frozenset({2}), mode=Mode.INLINE, depth=0) -> Part:
    return Part("u", shape_of(Component("u", asm.encode(list(insns)), proceed)), proceed, mode, depth)


RET_PASS = (asm.mov64_imm(R0, 2), asm.exit_())
# A verdict the linker cannot know (a helper's return), and r1 written (the call): every way
# out goes through the dispatch, and the context is reloaded after it.
RET_UNKNOWN = (asm.call_helper(7), asm.exit_())


def layout_of(low: int, high: int, components: int, proceed_on=frozenset({2})) -> CounterLayout:
    return CounterLayout(7, low, high, (proceed_on,) * components, components)
WITH_SUB = (asm.call_pseudo(2), asm.exit_(), asm.exit_(), asm.mov64_imm(R0, 2), asm.exit_())


def targets(insns, pc):
    return pc + insns[pc].imm + 1


def test_inline_chain_saves_context_below_the_deepest_stack_and_rewrites_exits():
    a = assemble([part(*RET_UNKNOWN, depth=20), part(*RET_UNKNOWN, depth=4)], end_verdict=2)
    insns = a.insns
    assert insns[0] == asm.stx_dw(FP, R1, -32)  # 20 bytes round up to 24, the slot below
    assert insns[2] == asm.ja(0)  # first component's exit -> its epilogue
    assert insns[3] == asm.jmp32_imm(asm.JNE, R0, 2, insns[3].off)
    assert insns[4] == asm.ldx_dw(R1, FP, -32)  # context reloaded before the next one
    assert [i for i in insns if i.is_exit] == [asm.exit_()]  # one shared exit
    assert insns[3 + insns[3].off + 1].is_exit
    assert a.func_starts == (0,) and a.part_starts == (1, 5)


def test_dispatch_needs_one_compare_per_proceed_verdict():
    codes = frozenset({-1, 0, 7})
    insns = assemble([part(*RET_PASS, proceed=codes), part(*RET_PASS)], end_verdict=-1).insns
    compares = [i for i in insns if i.cls == asm.JMP32]
    assert [(c.op, c.imm) for c in compares[:3]] == [(asm.JEQ, -1), (asm.JEQ, 0), (asm.JNE, 7)]
    # both JEQ land on the instruction after the JNE: the next component
    first = insns.index(compares[0])
    assert first + compares[0].off + 1 == first + 3 and first + 1 + compares[1].off + 1 == first + 3


def test_subprograms_follow_all_main_code_with_calls_rewritten():
    a = assemble([part(*WITH_SUB), part(*WITH_SUB)], end_verdict=2)
    insns = a.insns
    main_end = next(pc for pc, i in enumerate(insns) if i.is_exit)  # the shared exit
    assert len(a.func_starts) == 3 and all(s > main_end for s in a.func_starts[1:])
    calls = [pc for pc, i in enumerate(insns) if i.is_pseudo_call]
    assert [targets(insns, pc) for pc in calls] == list(a.func_starts[1:])
    assert insns[a.func_starts[1]] == asm.mov64_imm(R0, 2)  # the subprogram block, unchanged


def test_called_components_keep_context_in_r6_and_are_placed_whole():
    a = assemble([part(*WITH_SUB, mode=Mode.CALL), part(*RET_PASS, mode=Mode.CALL)], end_verdict=2)
    insns = a.insns
    assert insns[0] == asm.mov64_reg(R6, R1)
    calls = [pc for pc, i in enumerate(insns) if i.is_pseudo_call]
    assert targets(insns, calls[0]) == a.part_starts[0] and targets(insns, calls[1]) == a.part_starts[1]
    # the first called program's own call still reaches its subprogram
    inner = a.part_starts[0]
    assert targets(insns, inner) == inner + 3
    assert a.func_starts == (0, a.part_starts[0], a.part_starts[0] + 3, a.part_starts[1])


def test_counting_keeps_the_verdict_and_stays_in_its_slot_range():
    counters = layout_of(-1, 8, 2)
    insns = assemble([part(*RET_UNKNOWN), part(*RET_UNKNOWN)], end_verdict=-1, counters=counters).insns
    assert counters.rows == 11 and counters.value_size == 11 * 64
    writes = [i for i in insns if i.code == asm.STX | asm.MEM | asm.DW and i.dst != FP]
    # Going on (code 2, row 3): only the last component's known slot (the first's is derived);
    # ending: the row in the pointer, after the exit.
    assert [w.off for w in writes] == [3 * 64 + 8, 0, 8]
    assert insns.count(asm.mul64_imm(R2, 64)) == 2  # row (verdict) index times a row's bytes
    assert not any(i.dst == R0 for i in insns if i.cls in (asm.ALU, asm.ALU64) and i.code != 0xB7)


def test_a_counted_component_going_on_costs_its_compare_alone_when_its_count_is_derived():
    proceed = (frozenset({2}), frozenset({2, 3}), frozenset({2}))
    counters = CounterLayout(7, 0, 4, proceed, reachable=3)
    a = assemble([part(*RET_UNKNOWN, proceed=p) for p in proceed], end_verdict=2, counters=counters)
    insns = a.insns
    assert [counters.derived(i) for i in range(3)] == [2, None, None]  # one proceed verdict, not the last
    # part 0: call, ja (its exit); then the compare alone; then the next part's context reload
    at = a.part_starts[0] + 2
    assert insns[at : a.part_starts[1] - 1] == (asm.jmp32_imm(asm.JNE, R0, 2, insns[at].off),)
    slow = insns.index(asm.mov32_reg(R2, R0))  # the first ending count, after the main code's exit
    assert at + insns[at].off + 1 == slow and insns[slow - 1] == asm.exit_()
    # part 1 (two proceed verdicts) and part 2 (the last) count what goes on in known slots.
    written = [i.off for i in insns[:slow] if i.code == asm.STX | asm.MEM | asm.DW and i.dst != FP]
    assert written == [3 * 64 + 8, 2 * 64 + 8, 2 * 64 + 16]
    slot = insns[a.part_starts[2] + 3].off
    assert list(insns[a.part_starts[2] + 3 : a.part_starts[2] + 7]) == [
        asm.ldx_dw(R1, FP, slot), asm.ldx_dw(R3, R1, 2 * 64 + 16), asm.add64_imm(R3, 1), asm.stx_dw(R1, R3, 2 * 64 + 16)]


def test_no_count_is_derived_past_the_last_component_that_runs():
    layout = CounterLayout(7, 0, 4, (frozenset({2}), frozenset(), frozenset({2})), reachable=2)
    assert [layout.derived(i) for i in range(3)] == [2, None, None]


@pytest.mark.parametrize(("low", "high"), [(-1, 8), (0, 4)])
def test_one_verdict_of_32_components_lies_in_4_cache_lines(low, high):
    # What a chain of 32 components touches per frame when each returns its usual verdict.
    layout = layout_of(low, high, 32)
    for row in range(layout.rows):
        offsets = [layout.offset(i, row) for i in range(32)]
        assert len({o // 64 for o in offsets}) == 4 and offsets == sorted(offsets)
    every = {layout.offset(i, r) for i in range(32) for r in range(layout.rows)}
    assert len(every) == 32 * layout.rows and max(every) + 8 <= layout.value_size


def test_counter_lookup_is_null_checked_before_its_result_is_kept():
    # Kernels before the verifier's map-lookup nullness elision (5.10, 6.1, 6.12) refuse a
    # pointer from bpf_map_lookup_elem that is used unchecked, even for key 0 of an array.
    counters = layout_of(-1, 8, 1)
    insns = assemble([part(*RET_PASS)], end_verdict=-1, counters=counters).insns
    lookup = insns.index(asm.call_helper(asm.HELPER_MAP_LOOKUP_ELEM))
    check, fallback, leave, keep = insns[lookup + 1 : lookup + 5]
    assert check == asm.jmp_imm(asm.JNE, R0, 0, 2)  # 64-bit: the whole pointer
    assert (fallback, leave) == (asm.mov64_imm(R0, -1), asm.exit_())  # as if every unit proceeded
    assert keep == asm.stx_dw(FP, R0, keep.off)


def test_a_tail_calling_part_returns_its_verdict_unknown_to_the_verifier():
    # Verifiers before 6.18 take a tail-calling subprogram's fall-through return for its only one
    # and hard-wire the dispatch after the call on it (seen on 6.1 and 6.12).
    tail = Component("t", asm.encode([asm.call_helper(asm.HELPER_TAIL_CALL), asm.mov64_imm(R0, 2), asm.exit_()]),
                     frozenset({3}))
    called = Part("t", shape_of(tail), frozenset({3}), Mode.CALL, 0)
    insns = assemble([called, part(*RET_PASS)], end_verdict=2).insns
    call = next(pc for pc, i in enumerate(insns) if i.is_pseudo_call)
    spill, zero, add, fill = insns[call + 1 : call + 5]
    assert spill == asm.stx_dw(FP, R0, spill.off) and fill == asm.ldx_dw(R0, FP, spill.off)
    assert add == asm.atomic_add_dw(FP, zero.dst, spill.off) and zero == asm.mov64_imm(zero.dst, 0)
    plain = assemble([part(*RET_PASS, mode=Mode.CALL), part(*RET_PASS)], end_verdict=2).insns
    assert not any(i.code == asm.STX | asm.ATOMIC | asm.DW for i in plain)  # only after tail calls


def test_no_room_for_the_context_is_refused():
    with pytest.raises(LinkError, match="unit u: its stack leaves no room"):
        assemble([part(*RET_PASS, depth=512)], end_verdict=2)


def test_frames_called_on_top_of_the_chain_must_fit_too():
    called = part(*RET_PASS, mode=Mode.CALL)
    deep = Part("deep", called.shape, called.proceed_on, Mode.CALL, 0, stack_above=512)
    assemble([deep], end_verdict=2)  # called components alone: the context stays in r6
    with pytest.raises(LinkError, match="unit deep: its stack leaves no room for the chain's own 8 bytes"):
        assemble([part(*RET_PASS), deep], end_verdict=2)


def test_a_chain_needs_components():
    with pytest.raises(LinkError):
        assemble([], end_verdict=2)


def test_chains_too_long_for_16_bit_jumps_exit_locally():
    filler = (asm.mov64_imm(R0, 2),) * 12000
    parts = [part(*filler, *RET_PASS) for _ in range(3)]
    insns = assemble(parts, end_verdict=2).insns  # would not resolve with one shared exit
    exits = [pc for pc, i in enumerate(insns) if i.is_exit]
    assert len(exits) == 4  # one per dispatch, and the shared one
    short = assemble([part(*RET_PASS, proceed=frozenset({1, 2})), part(*RET_PASS)], end_verdict=2).insns
    assert sum(i.is_exit for i in short) == 1


def test_a_far_counted_dispatch_counts_an_ending_verdict_in_place():
    # Past 16-bit jumps the ending count cannot wait after the main code: it sits right there.
    counters = layout_of(0, 4, 2)
    long = (*[asm.mov64_imm(R0, 2)] * 20000, asm.exit_())
    a = assemble([part(*long), part(*long)], end_verdict=2, counters=counters)
    # JEQ, the ending count (9), its exit; no context reload: r1 is untouched on the way on.
    compare = a.part_starts[1] - 11
    assert a.insns[compare] == asm.jmp32_imm(asm.JEQ, R0, 2, 10)
    assert a.insns[compare + 1] == asm.mov32_reg(R2, R0) and a.insns[compare + 10] == asm.exit_()


def test_a_chain_takes_other_maps_of_its_own_where_it_refers_to_them():
    counters = layout_of(0, 4, 2)
    a = assemble([part(*RET_UNKNOWN), part(*RET_UNKNOWN)], end_verdict=2, counters=counters, manifest_fd=9)
    assert a.insns[a.manifest_at].imm == 9 and a.insns[a.counters_at].imm == 7
    b = a.with_maps(17, 19)
    assert b.insns[b.manifest_at].imm == 19 and b.insns[b.counters_at].imm == 17
    assert [pc for pc, (x, y) in enumerate(zip(a.insns, b.insns, strict=True)) if x != y] == [a.manifest_at,
                                                                                              a.counters_at]
    with pytest.raises(ValueError):
        a.with_maps(17, None)
    plain = assemble([part(*RET_UNKNOWN)], end_verdict=2)
    assert (plain.counters_at, plain.manifest_at) == (None, None) and plain.with_maps(None, None) == plain
