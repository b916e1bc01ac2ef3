"""The verdict an inlined main function returns, where its instructions alone tell it.

After each inlined component the chain compares r0 with the component's proceed verdicts. A
component written as `r0 = PASS; if (...) goto out; ...; out: return r0` (what clang emits for
`int ret = PASS; ... return ret;`) holds one known constant in r0 on some of its ways into an
exit. Those ways can go straight to where that verdict leads, and the compare (an instruction
and a branch per component and packet) runs only where the verdict is not known.

The analysis tracks the low 32 bits of r0, which is what the dispatch compares, forward over
the main function's control flow: a constant where every way to an instruction sets the same
one, else unknown. Anything it does not model (calls, loads, atomics, any other write of r0)
makes r0 unknown, so an edge is decided only where r0 is surely that constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from bpfunits.linker import asm
from bpfunits.linker.asm import Insn

_LOW32 = 0xFFFFFFFF

Known = int | None  # the low 32 bits of r0, or None where they are not one known constant


@dataclass(frozen=True)
class ExitFlow:
    """Where the verdict reaching an exit of a main function is known.

    `jumps`: each jump instruction (that the linker can point elsewhere) whose taken edge goes
    to an exit, with r0 on that edge. `exits`: each exit reached in other ways (falling
    through, or jumps the linker leaves as they are), with r0 over all of them. An exit absent
    from `exits` is reached only through the jumps of `jumps`, or never."""

    jumps: dict[int, Known]
    exits: dict[int, Known]


def low32(verdict: int) -> int:
    return verdict & _LOW32


def retargetable(insn: Insn) -> bool:
    """A jump whose target is its 16-bit off (not gotol's imm, not may_goto, not call or exit)."""
    if insn.cls == asm.JMP:
        return insn.op not in (asm.CALL, asm.EXIT, asm.JCOND)  # may_goto is left as it is
    return insn.cls == asm.JMP32 and insn.op not in (asm.JA, asm.CALL, asm.EXIT, asm.JCOND)


def exit_flow(main: tuple[Insn, ...]) -> ExitFlow:
    states = _r0_states(main)
    jumps: dict[int, Known] = {}
    exits: dict[int, Known] = {}
    for pc, value in states.items():
        insn = main[pc]
        out = _after(insn, value)
        taken = asm.jump_target(pc, insn)
        for target in _successors(pc, insn):
            if not (0 <= target < len(main) and main[target].is_exit):
                continue
            if target == taken and retargetable(insn):
                jumps[pc] = out
                if target != pc + 1 or insn.op == asm.JA:
                    continue  # only the taken edge goes there
            exits[target] = out if target not in exits else _join(exits[target], out)
    return ExitFlow(jumps, exits)


def _r0_states(main: tuple[Insn, ...]) -> dict[int, Known]:
    """r0 on entry to each reachable instruction (a worklist to the fixpoint: each instruction's
    state only goes from unreached to a constant to unknown, so it ends)."""
    states: dict[int, Known] = {0: None}  # nothing is known of r0 at entry
    work = [0]
    while work:
        pc = work.pop()
        out = _after(main[pc], states[pc])
        for target in _successors(pc, main[pc]):
            if not 0 <= target < len(main):
                continue  # refused by the verifier, which has loaded this component alone
            if target not in states:
                states[target] = out
            else:
                joined = _join(states[target], out)
                if joined == states[target]:
                    continue
                states[target] = joined
            work.append(target)
    return states


def _join(a: Known, b: Known) -> Known:
    return a if a == b else None


def _successors(pc: int, insn: Insn) -> tuple[int, ...]:
    if insn.is_exit:
        return ()
    if insn.is_ld_imm64:
        return (pc + 2,)
    taken = asm.jump_target(pc, insn)
    if taken is None:
        return (pc + 1,)
    if insn.op == asm.JA:
        return (taken,)
    return (pc + 1, taken)


def _after(insn: Insn, r0: Known) -> Known:
    """r0 after `insn`, given r0 before it."""
    cls = insn.cls
    if cls in (asm.ALU, asm.ALU64):
        if insn.dst != asm.R0:
            return r0
        if insn.op == asm.MOV and not insn.code & asm.X and insn.off == 0:
            return low32(insn.imm)  # mov64 sign-extends, mov32 zero-extends: the low 32 bits are imm's
        return None
    if cls == asm.LDX:
        return None if insn.dst == asm.R0 else r0
    if cls == asm.LD:
        return None if insn.dst == asm.R0 or insn.is_packet_load else r0
    if cls == asm.STX and insn.code & 0xE0 == asm.ATOMIC:
        return None  # fetch, exchange and compare-exchange write a register, r0 among them
    if insn.is_call:
        return None
    return r0


def writes(main: tuple[Insn, ...], reg: int) -> bool:
    """Whether any instruction of `main` may write `reg` (calls and packet loads write r0-r5)."""
    for insn in main:
        cls = insn.cls
        if cls in (asm.ALU, asm.ALU64, asm.LDX) and insn.dst == reg:
            return True
        if cls == asm.LD and (insn.dst == reg or (insn.is_packet_load and reg <= asm.R5)):
            return True
        if cls == asm.STX and insn.code & 0xE0 == asm.ATOMIC and reg in (insn.src, insn.dst, asm.R0):
            return True
        if insn.is_call and reg <= asm.R5:
            return True
    return False
