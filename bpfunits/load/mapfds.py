"""Map fds inside instructions: ld_imm64 with BPF_PSEUDO_MAP_FD or BPF_PSEUDO_MAP_VALUE holds a map
fd of the process that made the instructions, which means nothing in another process."""

from __future__ import annotations

import struct


def with_map_fds(insns: bytes, swap: dict[int, int]) -> bytes:
    """The instructions with map fds in ld_imm64 (BPF_PSEUDO_MAP_FD/_VALUE) replaced per `swap`."""
    out = bytearray(insns)
    pc = 0
    while pc < len(out):
        if out[pc] == 0x18:  # ld_imm64: two slots, the map fd in the first one's imm
            if out[pc + 1] >> 4 in (1, 2):
                fd = struct.unpack_from("<i", out, pc + 4)[0]
                struct.pack_into("<i", out, pc + 4, swap.get(fd, fd))
            pc += 16
        else:
            pc += 8
    return bytes(out)
