"""A reference interpreter of the eBPF instructions the linker emits and the tests' generated
components use: the oracle of the pure differential tests (a chain must return what its
components, run one after another, return), without a kernel. It raises on anything else, so a
test cannot pass by running what it does not model.

Memory is a few regions at fixed addresses (stack, context, frame, map values); a pointer is
an integer inside one of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bpfunits.linker import asm
from bpfunits.linker.asm import Insn

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1
STACK_TOP = 0x1000_0000  # r10; the stack is the 512 bytes below
CTX = 0x2000_0000
MAP_VALUE = 0x3000_0000
FRAME = 0x4000_0000
MAP_HANDLE = 0x5000_0000  # + fd: what ld_imm64 of a map gives


class SimError(Exception):
    pass


@dataclass
class Run:
    verdict: int  # r0 at the exit, 64 bits
    steps: int
    taken: int  # jumps taken that moved anywhere but to the next instruction


@dataclass
class Memory:
    regions: dict[int, bytearray] = field(default_factory=dict)

    def _find(self, addr: int, size: int) -> tuple[bytearray, int]:
        for base, data in self.regions.items():
            if base <= addr and addr + size <= base + len(data):
                return data, addr - base
        raise SimError(f"access of {size} bytes at {addr:#x} outside every region")

    def load(self, addr: int, size: int) -> int:
        data, at = self._find(addr, size)
        return int.from_bytes(data[at:at + size], "little")

    def store(self, addr: int, size: int, value: int) -> None:
        data, at = self._find(addr, size)
        data[at:at + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


_SIZES = {asm.B: 1, asm.H: 2, asm.W: 4, asm.DW: 8}
_SUB, _OR, _AND, _XOR = 0x10, 0x40, 0x50, 0xA0


def signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _alu(op: int, a: int, b: int, bits: int) -> int:
    mask = (1 << bits) - 1
    if op == asm.MOV:
        return b & mask
    if op == asm.ADD:
        return (a + b) & mask
    if op == _SUB:
        return (a - b) & mask
    if op == asm.MUL:
        return (a * b) & mask
    if op == asm.LSH:
        return (a << (b & (bits - 1))) & mask
    if op == _AND:
        return a & b & mask
    if op == _OR:
        return (a | b) & mask
    if op == _XOR:
        return (a ^ b) & mask
    raise SimError(f"ALU operation {op:#x} is not modelled")


def compare(op: int, a: int, b: int, bits: int) -> bool:
    mask = (1 << bits) - 1
    ua, ub = a & mask, b & mask
    sa, sb = signed(a, bits), signed(b, bits)
    results = {
        asm.JEQ: ua == ub, asm.JNE: ua != ub, asm.JGT: ua > ub, asm.JGE: ua >= ub, asm.JLT: ua < ub,
        asm.JLE: ua <= ub, asm.JSGT: sa > sb, asm.JSGE: sa >= sb, asm.JSLT: sa < sb, asm.JSLE: sa <= sb,
        asm.JSET: bool(ua & ub),
    }  # fmt: skip
    if op not in results:
        raise SimError(f"jump operation {op:#x} is not modelled")
    return results[op]


Helper = Callable[[int, list[int]], int]  # (helper id, r1..r5) -> r0


def run(insns: tuple[Insn, ...], memory: Memory, helper: Helper, r1: int, max_steps: int = 100_000) -> Run:
    """Run `insns` from pc 0 with r1 = `r1` until its exit (main function only: no bpf-to-bpf calls)."""
    regs = [0] * 11
    regs[1], regs[10] = r1, STACK_TOP
    pc = steps = taken = 0
    while True:
        if not 0 <= pc < len(insns):
            raise SimError(f"pc {pc} outside the program")
        steps += 1
        if steps > max_steps:
            raise SimError("too many steps")
        i = insns[pc]
        cls = i.cls
        src_val = regs[i.src] if i.code & asm.X else i.imm & MASK64
        if cls in (asm.ALU, asm.ALU64):
            bits = 64 if cls == asm.ALU64 else 32
            if i.off:
                raise SimError("signed division and sign-extending moves are not modelled")
            regs[i.dst] = _alu(i.op, regs[i.dst], src_val, bits)
        elif cls == asm.LDX and i.code & 0xE0 == asm.MEM:
            regs[i.dst] = memory.load(regs[i.src] + i.off, _SIZES[i.code & 0x18])
        elif cls == asm.STX and i.code & 0xE0 == asm.MEM:
            memory.store(regs[i.dst] + i.off, _SIZES[i.code & 0x18], regs[i.src])
        elif cls == asm.ST and i.code & 0xE0 == asm.MEM:
            memory.store(regs[i.dst] + i.off, _SIZES[i.code & 0x18], i.imm & MASK64)
        elif cls == asm.STX and i.code & 0xE0 == asm.ATOMIC and i.imm == asm.ADD:
            size = _SIZES[i.code & 0x18]
            addr = regs[i.dst] + i.off
            memory.store(addr, size, memory.load(addr, size) + regs[i.src])
        elif i.is_ld_imm64:
            if i.src != asm.PSEUDO_MAP_FD:
                raise SimError("only ld_imm64 of a map fd is modelled")
            regs[i.dst] = MAP_HANDLE + i.imm
            pc += 2
            continue
        elif i.is_helper_call:
            regs[0] = helper(i.imm, regs[1:6]) & MASK64
            regs[1:6] = [0xDEAD] * 5  # clobbered: a reader of them reads garbage
        elif i.is_exit:
            return Run(regs[0], steps, taken)
        elif cls in (asm.JMP, asm.JMP32) and not i.is_call:
            if i.op == asm.JA:
                off = i.imm if cls == asm.JMP32 else i.off
                go = True
            else:
                go = compare(i.op, regs[i.dst], src_val, 64 if cls == asm.JMP else 32)
                off = i.off
            if go:
                taken += off != 0
                pc += off
        else:
            raise SimError(f"instruction {i} is not modelled")
        pc += 1
