"""The way on through an inlined component, kept straight.

A component written `if (bad) return DROP; return PASS;` is compiled to a conditional jump over
the block that drops: `if (!bad) goto out; r0 = DROP; out: exit`. Inlined as it is, every packet
that goes on takes that jump, one taken branch per component and packet, which real traffic
showed costs about 1 ns per component on this project's machine (TEST_RUN, where every branch
is predicted and cached, does not show it). The linker moves such a block, one that ends the
chain, off the way on, after the chain's main code, and inverts the jump: going on then falls
through every component, as if they had been written as one program.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from bpfunits.linker import asm
from bpfunits.linker.asm import Insn

_INVERSE = {
    asm.JEQ: asm.JNE, asm.JNE: asm.JEQ,
    asm.JGT: asm.JLE, asm.JLE: asm.JGT, asm.JGE: asm.JLT, asm.JLT: asm.JGE,
    asm.JSGT: asm.JSLE, asm.JSLE: asm.JSGT, asm.JSGE: asm.JSLT, asm.JSLT: asm.JSGE,
}  # fmt: skip  (JSET has no inverse among the jumps)


def invertible(insn: Insn) -> bool:
    return insn.cls in (asm.JMP, asm.JMP32) and insn.op in _INVERSE


def invert(insn: Insn) -> Insn:
    """The conditional jump taken exactly where `insn` (invertible) is not."""
    return insn.with_(code=insn.cls | _INVERSE[insn.op] | (insn.code & asm.X))


def cold_blocks(
    main: tuple[Insn, ...], routes: Mapping[int, object], follows: object, ending: Collection[object]
) -> dict[int, int]:
    """The blocks of `main` to move off the way on: {j: k} for the conditional jump at j whose
    fall-through block j+1..k ends the chain, where the jump goes where the block's end would
    have fallen through to. Such a block is straight code ending in an exit or an unconditional
    jump whose route (`routes`: where the linker sends each exit and each jump it retargets) is
    among the routes that end the chain (`ending`). `follows` is where falling off the end of `main` leads."""

    def dest(pc: int) -> object:
        return follows if pc == len(main) else ("pc", pc)

    blocks = {}
    pc = 0
    while pc < len(main):
        insn = main[pc]
        if not invertible(insn):
            pc += 2 if insn.is_ld_imm64 else 1
            continue
        k = pc + 1
        while k < len(main) and not main[k].is_exit and asm.jump_target(k, main[k]) is None:
            k += 2 if main[k].is_ld_imm64 else 1
        if k < len(main) and (main[k].is_exit or main[k].code == asm.JMP | asm.JA) and routes.get(k) in ending:
            taken = routes[pc] if pc in routes else dest(pc + insn.off + 1)
            if taken == dest(k + 1):
                blocks[pc] = k
        pc += 1
    return blocks
