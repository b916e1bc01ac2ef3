"""The way on through inlined components kept straight (hotpath.py), and chains checked against
their components by a reference interpreter (ebpf_sim.py): pure, no kernel."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfunits.linker import asm
from bpfunits.linker.asm import R0, R1, R2, R3, R7, Insn
from bpfunits.linker.component import Component, LinkError, shape_of
from bpfunits.linker.hotpath import cold_blocks, invert, invertible
from bpfunits.linker.layout import CounterLayout, assemble
from tests import ebpf_sim
from tests.test_linker_flow import DROP, PASS, looks_at_byte, part

NEXT, EXIT = "next", "exit"


def test_every_compare_inverts_but_jset():
    for cls in (asm.JMP, asm.JMP32):
        for op in (asm.JEQ, asm.JNE, asm.JGT, asm.JGE, asm.JLT, asm.JLE, asm.JSGT, asm.JSGE, asm.JSLT, asm.JSLE):
            for src in (asm.K, asm.X):
                jump = Insn(cls | op | src, R2, R3, 5, 7)
                inverted = invert(jump)
                assert invertible(jump) and inverted.op != op and inverted.cls == cls
                assert (inverted.code & asm.X, inverted.off, inverted.imm) == (src, 5, 7)
                assert invert(inverted) == jump
                for a in (0, 1, 7, 8, 2**63, 2**64 - 1):  # taken exactly where the other is not
                    b = 7 if src == asm.K else 8
                    bits = 64 if cls == asm.JMP else 32
                    assert ebpf_sim.compare(op, a, b, bits) != ebpf_sim.compare(inverted.op, a, b, bits)
    for other in (Insn(asm.JMP | asm.JSET, R2, 0, 1, 1), asm.ja(3), asm.exit_(), asm.call_helper(7),
                  asm.mov64_imm(R0, 1)):
        assert not invertible(other)


def test_a_block_that_ends_the_chain_is_moved_off_the_way_on():
    # looks_at_byte: `if frame[14] != 0xff goto out; r0 = DROP; out: exit`, the jump routed on.
    routes = {5: NEXT, 7: NEXT, 9: EXIT}
    assert cold_blocks(looks_at_byte(), routes, NEXT, {EXIT}) == {7: 9}
    # Where going on leads through the dispatch, the jump would no longer fall into it.
    assert cold_blocks(looks_at_byte(), routes, ("end", 0), {EXIT}) == {}
    # A block whose end goes on is not moved: it is the way on.
    assert cold_blocks(looks_at_byte(), {5: EXIT, 7: EXIT, 9: NEXT}, NEXT, {EXIT}) == {}


def test_a_block_in_the_middle_is_moved_with_what_it_holds():
    # clang's `if (x) { r0 = DROP; goto out; }` in the middle, an ld_imm64 in the block.
    code = (asm.mov64_imm(R0, PASS), asm.jmp_imm(asm.JEQ, R1, 0, 4), asm.mov64_imm(R0, DROP),
            *asm.ld_map_fd(R2, 3), asm.ja(2), asm.add64_imm(R1, 1), asm.jmp_imm(asm.JEQ, R1, 9, 0), asm.exit_())
    routes = {4 + 1: EXIT, 8: NEXT}  # the ja at 5 goes to the exit: routed to the chain's exit
    assert cold_blocks(code, routes, NEXT, {EXIT}) == {1: 5}
    # A jump that skips the block to somewhere else than where the block would fall through.
    skips_further = (*code[:1], asm.jmp_imm(asm.JEQ, R1, 0, 5), *code[2:])
    assert cold_blocks(skips_further, routes, NEXT, {EXIT}) == {}
    # JSET cannot be inverted.
    jset = (*code[:1], Insn(asm.JMP | asm.JSET, R1, 0, 4, 1), *code[2:])
    assert cold_blocks(jset, routes, NEXT, {EXIT}) == {}


def frame(byte14: int) -> bytes:
    return bytes(14) + bytes([byte14]) + bytes(49)


def memory_for(data: bytes, value_size: int = 0) -> tuple[ebpf_sim.Memory, int]:
    """The regions of one packet: an XDP-like context (data, data_end as u32) and its frame."""
    ctx = (ebpf_sim.FRAME).to_bytes(4, "little") + (ebpf_sim.FRAME + len(data)).to_bytes(4, "little")
    regions = {ebpf_sim.STACK_TOP - 512: bytearray(512), ebpf_sim.CTX: bytearray(ctx),
               ebpf_sim.FRAME: bytearray(data), ebpf_sim.MAP_VALUE: bytearray(value_size)}
    return ebpf_sim.Memory(regions), ebpf_sim.CTX


def helpers(results: list[int]) -> ebpf_sim.Helper:
    """Helper 1 (the counters' lookup) gives the map value; helper 7 the next of `results`."""
    calls = iter(results * 64)

    def helper(helper_id: int, args: list[int]) -> int:
        if helper_id == asm.HELPER_MAP_LOOKUP_ELEM:
            return ebpf_sim.MAP_VALUE
        assert helper_id == 7
        return next(calls)

    return helper


def test_going_on_through_the_chain_takes_no_jump():
    # The cost real traffic showed (hotpath.py): with the blocks that drop moved away, a frame
    # that every component lets go on runs straight through, however long the chain.
    for n in (2, 8):
        a = assemble([part(looks_at_byte()) for _ in range(n)], end_verdict=PASS)
        memory, ctx = memory_for(frame(0))
        passed = ebpf_sim.run(a.insns, memory, helpers([]), ctx)
        assert (passed.verdict, passed.taken) == (PASS, 0)
        memory, ctx = memory_for(frame(0xFF))
        assert ebpf_sim.run(a.insns, memory, helpers([]), ctx).verdict == DROP
    taken = []
    for n in (2, 8):
        counters = CounterLayout(7, 0, 3, (frozenset({PASS}),) * n, n)
        a = assemble([part(looks_at_byte()) for _ in range(n)], end_verdict=PASS, counters=counters)
        memory, ctx = memory_for(frame(0), counters.value_size)
        taken.append(ebpf_sim.run(a.insns, memory, helpers([]), ctx).taken)
    assert taken[0] == taken[1]  # counted: a few jumps where the chain ends, none per component


VERDICTS = (-1, 0, 1, 2, 3)  # as tc's: TC_ACT_UNSPEC is -1


def set_r0(verdict: int) -> Insn:
    return asm.mov64_imm(R0, verdict)


@st.composite
def component(draw) -> tuple[Insn, ...]:
    """A component as the verifier would let it through: r0 set before any exit, the frame read
    through a pointer kept in a callee-saved register, forward jumps (to exits, into blocks, past them), early exits,
    blocks that set a verdict and jump to the end, helper calls and a clobbered r1."""
    code: list[Insn] = [Insn(asm.LDX | asm.MEM | asm.W, R7, R1, 0), set_r0(draw(st.sampled_from(VERDICTS))),
                        Insn(asm.LDX | asm.MEM | asm.B, R2, R7, 14)]  # r7: the frame, kept over calls
    jumps: list[tuple[int, int]] = []  # (pc, a draw that picks its target)
    kinds = ["verdict", "load", "load_r0", "call", "clobber", "branch", "early", "goto_end"]
    for kind in draw(st.lists(st.sampled_from(kinds), max_size=10)):
        if kind == "verdict":
            code.append(set_r0(draw(st.sampled_from(VERDICTS))))
        elif kind in ("load", "load_r0"):
            code.append(Insn(asm.LDX | asm.MEM | asm.B, R2 if kind == "load" else R0, R7, draw(st.integers(0, 15))))
        elif kind == "call":
            code.append(asm.call_helper(7))
        elif kind == "clobber":
            code.append(asm.mov64_imm(R1, 0))
        elif kind == "branch":
            op = draw(st.sampled_from([asm.JEQ, asm.JNE, asm.JGT, asm.JLE, asm.JSET]))
            jumps.append((len(code), draw(st.integers(0, 1000))))
            code.append(Insn(asm.JMP | op, R2, 0, 0, draw(st.integers(0, 3))))
        elif kind == "early":
            code += [asm.jmp_imm(asm.JNE, R2, draw(st.integers(0, 3)), 2),
                     set_r0(draw(st.sampled_from(VERDICTS))), asm.exit_()]
        else:
            jumps.append((len(code) + 1, -1))  # to the last exit
            code += [set_r0(draw(st.sampled_from(VERDICTS))), asm.ja(0)]
    code.append(asm.exit_())
    last = len(code) - 1
    for pc, pick in jumps:
        target = last if pick < 0 else pc + 1 + pick % (last - pc)
        code[pc] = code[pc].with_(off=target - pc - 1)
    return tuple(code)


def run_alone(components: list[tuple[tuple[Insn, ...], frozenset[int]]], data: bytes, calls: list[int],
              end_verdict: int) -> tuple[int, list[int]]:
    """What the chain must do: each component on its own until one does not go on; the chain's
    verdict and each component's."""
    helper = helpers(calls)
    verdicts = []
    for code, proceed in components:
        memory, ctx = memory_for(data)
        verdict = ebpf_sim.signed(ebpf_sim.run(code, memory, helper, ctx).verdict, 32)  # what the hook reads
        verdicts.append(verdict)
        if verdict not in proceed:
            return verdict, verdicts
    return end_verdict, verdicts


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(component(), st.frozensets(st.sampled_from(VERDICTS), min_size=1)), min_size=1, max_size=4),
       st.binary(min_size=16, max_size=16), st.lists(st.sampled_from(VERDICTS), min_size=1, max_size=4), st.booleans())
def test_a_chain_returns_and_counts_what_its_components_do(components, data, calls, counted):
    parts = [part(code, proceed) for code, proceed in components]
    counters = CounterLayout(7, -1, 3, tuple(p.proceed_on for p in parts), len(parts)) if counted else None
    a = assemble(parts, end_verdict=PASS, counters=counters)
    memory, ctx = memory_for(data, counters.value_size if counters else 0)
    chain = ebpf_sim.run(a.insns, memory, helpers(calls), ctx)
    expected, verdicts = run_alone(components, data, calls, PASS)
    assert ebpf_sim.signed(chain.verdict, 32) == expected
    if counters:
        # Every verdict counted in its own slot, but those derived from the next one's entries.
        want = bytearray(counters.value_size)
        for i, verdict in enumerate(verdicts):
            if verdict != counters.derived(i):
                row = verdict - counters.low if counters.low <= verdict <= counters.high else counters.rows - 1
                at = counters.offset(i, row)
                want[at:at + 8] = (int.from_bytes(want[at:at + 8], "little") + 1).to_bytes(8, "little")
        assert memory.regions[ebpf_sim.MAP_VALUE] == want


def test_a_jump_out_of_its_main_function_is_refused_naming_the_unit():
    # The verifier keeps jumps inside their function, and the linker moves code trusting that;
    # code that says otherwise is refused before anything is moved.
    for jump in (asm.ja(5), asm.ja(-3), Insn(asm.JMP32 | asm.JA, 0, 0, 0, 9)):
        code = asm.encode([asm.mov64_imm(R0, PASS), jump, asm.exit_()])
        with pytest.raises(LinkError, match="unit u: instruction 1 jumps out of its main function"):
            shape_of(Component("u", code, frozenset({PASS})))
    calls = asm.encode([asm.call_pseudo(2), asm.ja(1), asm.exit_(), asm.mov64_imm(R0, 0), asm.exit_()])
    with pytest.raises(LinkError, match="instruction 1 jumps out"):  # into the subprogram
        shape_of(Component("u", calls, frozenset({PASS})))
    with pytest.raises(LinkError, match="calls outside the program"):
        shape_of(Component("u", asm.encode([asm.call_pseudo(5), asm.exit_()]), frozenset({PASS})))
