"""The eBPF instruction codec: 8-byte instructions as typed values, and the few builders the
linker emits. Encoding per Documentation/bpf/standardization/instruction-set.rst."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bpfunits.errors import BpfUnitsError

_FORMAT = struct.Struct("<BBhi")
SIZE = _FORMAT.size

# Instruction classes (code & 0x07).
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
# Operation field (code & 0xf0) of jump classes (JCOND: may_goto).
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, CALL, EXIT, JLT, JLE, JSLT, JSLE, JCOND = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0,
)  # fmt: skip
# ALU operations.
ADD, MUL, LSH, MOV = 0x00, 0x20, 0x60, 0xB0
# Source operand: immediate (K) or register (X).
K, X = 0x00, 0x08
# Memory modes (code & 0xe0) and sizes (code & 0x18).
IMM, ABS, IND, MEM, ATOMIC = 0x00, 0x20, 0x40, 0x60, 0xC0  # ATOMIC with imm ADD: 5.10's XADD
W, H, B, DW = 0x00, 0x08, 0x10, 0x18

LD_IMM64 = LD | IMM | DW  # 0x18, two slots
# src_reg of a call: helper, bpf-to-bpf call (pc-relative imm), kfunc.
PSEUDO_CALL = 1
PSEUDO_KFUNC_CALL = 2  # off: index of the module BTF fd in the load's fd_array
# src_reg of ld_imm64: map fd, map value, BTF id, function address (pc-relative imm), fd_array forms.
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_BTF_ID, PSEUDO_FUNC, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE = range(1, 7)

HELPER_MAP_LOOKUP_ELEM = 1
HELPER_TAIL_CALL = 12

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
FP = R10

JUMP_OFF_MAX = 0x7FFF
JUMP_OFF_MIN = -0x8000


class AsmError(BpfUnitsError):
    pass


@dataclass(frozen=True)
class Insn:
    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    @property
    def cls(self) -> int:
        return self.code & 0x07

    @property
    def op(self) -> int:
        return self.code & 0xF0

    @property
    def is_exit(self) -> bool:
        return self.code == JMP | EXIT

    @property
    def is_call(self) -> bool:
        return self.code == JMP | CALL

    @property
    def is_pseudo_call(self) -> bool:
        return self.is_call and self.src == PSEUDO_CALL

    @property
    def is_helper_call(self) -> bool:
        return self.is_call and self.src == 0

    @property
    def is_ld_imm64(self) -> bool:
        return self.code == LD_IMM64

    @property
    def is_pseudo_func(self) -> bool:
        return self.is_ld_imm64 and self.src == PSEUDO_FUNC

    @property
    def is_packet_load(self) -> bool:
        """Legacy LD_ABS/LD_IND: implicit r6 context and an implicit `return 0` on failure."""
        return self.cls == LD and self.code & 0xE0 in (ABS, IND)

    @property
    def pc_relative_target(self) -> int | None:
        """Offset (target - pc - 1) held in imm, for calls to subprograms and function addresses."""
        return self.imm if self.is_pseudo_call or self.is_pseudo_func else None

    def encode(self) -> bytes:
        return _FORMAT.pack(self.code, (self.src << 4) | self.dst, self.off, self.imm)

    def with_(self, code: int | None = None, off: int | None = None, imm: int | None = None) -> Insn:
        """This instruction with another code, offset or immediate (the linker's only rewrites;
        built directly, as dataclasses.replace costs several times more per jump it resolves)."""
        return Insn(self.code if code is None else code, self.dst, self.src, self.off if off is None else off,
                    self.imm if imm is None else imm)


def decode(raw: bytes) -> list[Insn]:
    if len(raw) % SIZE:
        raise AsmError(f"instruction stream is {len(raw)} bytes, not a multiple of {SIZE}")
    out = []
    for code, regs, off, imm in _FORMAT.iter_unpack(raw):
        out.append(Insn(code, regs & 0x0F, regs >> 4, off, imm))
    return out


def encode(insns: list[Insn] | tuple[Insn, ...]) -> bytes:
    return b"".join(i.encode() for i in insns)


def jump_target(pc: int, insn: Insn) -> int | None:
    """Where the jump at `pc` goes when taken (gotol: its imm, every other jump: its off); None
    for anything that is not a jump (calls return to the next instruction, exits go nowhere)."""
    if insn.cls not in (JMP, JMP32) or insn.op in (CALL, EXIT):
        return None
    return pc + (insn.imm if insn.cls == JMP32 and insn.op == JA else insn.off) + 1


def jump_off(source_pc: int, target_pc: int) -> int:
    off = target_pc - source_pc - 1
    if not JUMP_OFF_MIN <= off <= JUMP_OFF_MAX:
        raise AsmError(f"jump from {source_pc} to {target_pc} does not fit a 16-bit offset")
    return off


# --- builders -------------------------------------------------------------------------------


def mov64_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | MOV | K, dst, 0, 0, imm)


def mov64_reg(dst: int, src: int) -> Insn:
    return Insn(ALU64 | MOV | X, dst, src, 0, 0)


def mov32_reg(dst: int, src: int) -> Insn:
    return Insn(ALU | MOV | X, dst, src, 0, 0)


def mov32_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU | MOV | K, dst, 0, 0, imm)


def add32_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU | ADD | K, dst, 0, 0, imm)


def add64_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | ADD | K, dst, 0, 0, imm)


def add64_reg(dst: int, src: int) -> Insn:
    return Insn(ALU64 | ADD | X, dst, src, 0, 0)


def mul64_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | MUL | K, dst, 0, 0, imm)


def lsh64_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | LSH | K, dst, 0, 0, imm)


def ldx_dw(dst: int, src: int, off: int) -> Insn:
    return Insn(LDX | MEM | DW, dst, src, off, 0)


def stx_dw(dst: int, src: int, off: int) -> Insn:
    return Insn(STX | MEM | DW, dst, src, off, 0)


def atomic_add_dw(dst: int, src: int, off: int) -> Insn:
    """*(u64 *)(dst + off) += src, atomically (BPF_XADD before 5.12 named it)."""
    return Insn(STX | ATOMIC | DW, dst, src, off, ADD)


def st_w(dst: int, off: int, imm: int) -> Insn:
    return Insn(ST | MEM | W, dst, 0, off, imm)


def ja(off: int) -> Insn:
    return Insn(JMP | JA, 0, 0, off, 0)


def jmp32_imm(op: int, dst: int, imm: int, off: int) -> Insn:
    return Insn(JMP32 | op | K, dst, 0, off, imm)


def jmp_imm(op: int, dst: int, imm: int, off: int) -> Insn:
    """A 64-bit compare: pointers are compared whole."""
    return Insn(JMP | op | K, dst, 0, off, imm)


def call_helper(helper_id: int) -> Insn:
    return Insn(JMP | CALL, 0, 0, 0, helper_id)


def call_pseudo(imm: int) -> Insn:
    return Insn(JMP | CALL, 0, PSEUDO_CALL, 0, imm)


def exit_() -> Insn:
    return Insn(JMP | EXIT)


def ld_map_fd(dst: int, map_fd: int) -> tuple[Insn, Insn]:
    return Insn(LD_IMM64, dst, PSEUDO_MAP_FD, 0, map_fd), Insn(0)
