"""The instruction codec and the component shape analysis (pure)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfunits.linker import asm
from bpfunits.linker.asm import FP, R0, R1, R2, Insn
from bpfunits.linker.component import Component, LinkError, shape_of, stack_above_main, tail_call_prefix

insn_strategy = st.builds(
    Insn,
    code=st.integers(0, 255),
    dst=st.integers(0, 15),
    src=st.integers(0, 15),
    off=st.integers(-0x8000, 0x7FFF),
    imm=st.integers(-(1 << 31), (1 << 31) - 1),
)


@given(st.lists(insn_strategy, max_size=20))
def test_encode_decode_round_trip(insns):
    raw = asm.encode(insns)
    assert len(raw) == 8 * len(insns)
    assert asm.decode(raw) == insns


def test_encoding_matches_the_kernel_layout():
    # r0 = 2: code 0xb7, dst 0 | src 0, off 0, imm 2
    assert asm.mov64_imm(R0, 2).encode() == struct.pack("<BBhi", 0xB7, 0, 0, 2)
    # *(u64 *)(r10 - 8) = r1: code 0x7b, regs src<<4 | dst
    assert asm.stx_dw(FP, R1, -8).encode() == struct.pack("<BBhi", 0x7B, 0x1A, -8, 0)
    assert asm.exit_().encode() == struct.pack("<BBhi", 0x95, 0, 0, 0)


def test_decode_refuses_a_partial_instruction():
    with pytest.raises(asm.AsmError):
        asm.decode(b"\0" * 12)


def test_jump_offsets_must_fit_16_bits():
    assert asm.jump_off(10, 12) == 1
    with pytest.raises(asm.AsmError):
        asm.jump_off(0, 0x8001)


def component(*insns: Insn) -> Component:
    return Component("u", asm.encode(list(insns)), frozenset({2}))


def test_shape_splits_main_from_subprograms_and_skips_ld_imm64_halves():
    shape = shape_of(
        component(
            *asm.ld_map_fd(R1, 5),  # its second half is not an instruction
            asm.call_pseudo(2),  # pc 2 -> 5
            asm.mov64_imm(R0, 2),
            asm.exit_(),
            asm.mov64_imm(R0, 1),  # pc 5: subprogram
            asm.exit_(),
        )
    )
    assert shape.main_len == 5 and shape.subprog_starts == (5,)
    assert not shape.tail_calls and not shape.packet_loads


def test_shape_finds_callbacks_tail_calls_and_packet_loads():
    callback = Insn(asm.LD_IMM64, R2, asm.PSEUDO_FUNC, 0, 3)  # pc 0 -> 4
    shape = shape_of(
        component(callback, Insn(0), asm.call_helper(asm.HELPER_TAIL_CALL), asm.exit_(), asm.exit_())
    )
    assert shape.subprog_starts == (4,) and shape.tail_calls
    ld_abs = Insn(asm.LD | asm.ABS | asm.B, 0, 0, 0, 14)
    assert shape_of(component(ld_abs, asm.exit_())).packet_loads


def test_shape_refuses_calls_outside_the_program_and_fd_array_maps():
    with pytest.raises(LinkError, match="unit u: instruction 0 calls outside"):
        shape_of(component(asm.call_pseudo(5), asm.exit_()))
    with pytest.raises(LinkError, match="fd_array"):
        shape_of(component(Insn(asm.LD_IMM64, R1, asm.PSEUDO_MAP_IDX, 0, 0), Insn(0), asm.exit_()))
    with pytest.raises(LinkError, match="kfuncs of kernel modules"):
        shape_of(component(Insn(asm.JMP | asm.CALL, 0, asm.PSEUDO_KFUNC_CALL, 1, 77), asm.exit_()))
    with pytest.raises(LinkError, match="no instructions"):
        shape_of(Component("u", b"", frozenset()))


def test_stack_above_main_follows_the_deepest_call_chain():
    shape = shape_of(
        component(
            asm.call_pseudo(3),  # pc 0 -> 4 (a)
            asm.call_pseudo(4),  # pc 1 -> 6 (b)
            asm.mov64_imm(R0, 2),
            asm.exit_(),
            asm.call_pseudo(1),  # pc 4, a -> 6 (b)
            asm.exit_(),
            asm.exit_(),  # pc 6, b
        )
    )
    assert shape.subprog_starts == (4, 6)
    # main 8, a 20 -> 32, b 40 -> 48: main calls a calls b, so 80 above main
    assert stack_above_main(shape, (8, 20, 40)) == 80
    assert stack_above_main(shape_of(component(asm.mov64_imm(R0, 2), asm.exit_())), (16,)) == 0


def test_tail_call_prefix_is_the_stack_below_the_deepest_tail_call():
    tail = asm.call_helper(asm.HELPER_TAIL_CALL)
    in_main = shape_of(component(tail, asm.exit_()))
    assert tail_call_prefix(in_main, (40,)) == 0
    in_sub = shape_of(component(asm.call_pseudo(1), asm.exit_(), tail, asm.exit_()))  # pc 0 -> 2
    assert tail_call_prefix(in_sub, (40, 8)) == 48
    assert tail_call_prefix(shape_of(component(asm.mov64_imm(R0, 2), asm.exit_())), (0,)) is None
