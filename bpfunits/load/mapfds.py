"""Map fds inside instructions: ld_imm64 with BPF_PSEUDO_MAP_FD or BPF_PSEUDO_MAP_VALUE holds a map
fd of the process that made the instructions, which means nothing in another process."""

from __future__ import annotations

from bpfunits.linker import asm

_MAP_FD_SOURCES = (asm.PSEUDO_MAP_FD, asm.PSEUDO_MAP_VALUE)


def with_map_fds(insns: bytes, swap: dict[int, int]) -> bytes:
    """The instructions with map fds in ld_imm64 (BPF_PSEUDO_MAP_FD/_VALUE) replaced per `swap`."""
    return asm.encode([
        insn.with_(imm=swap.get(insn.imm, insn.imm)) if insn.is_ld_imm64 and insn.src in _MAP_FD_SOURCES else insn
        for insn in asm.decode(insns)
    ])
