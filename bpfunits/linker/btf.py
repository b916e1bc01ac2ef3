"""The least BTF a linked program needs: one FUNC per function, all `static int f(void *ctx)`.

The kernel wants func info when a subprogram tail-calls; if given, it must name every function."""

from __future__ import annotations

import struct
from dataclasses import dataclass

_MAGIC = 0xEB9F
_KIND_INT, _KIND_PTR, _KIND_FUNC, _KIND_FUNC_PROTO = 1, 2, 12, 13
_INT_SIGNED = 1 << 24
_LINKAGE_STATIC = 0
FUNC_INFO_REC_SIZE = 8


@dataclass(frozen=True)
class FuncBtf:
    blob: bytes  # for BPF_BTF_LOAD
    func_info: bytes  # bpf_func_info records {insn_off, type_id}, sorted by insn_off


def func_btf(func_starts: tuple[int, ...]) -> FuncBtf:
    strings = bytearray(b"\0")

    def string(s: str) -> int:
        off = len(strings)
        strings.extend(s.encode() + b"\0")
        return off

    def btf_type(name_off: int, kind: int, vlen: int, size_or_type: int) -> bytes:
        return struct.pack("<III", name_off, (kind << 24) | vlen, size_or_type)

    types = bytearray()
    types += btf_type(string("int"), _KIND_INT, 0, 4) + struct.pack("<I", _INT_SIGNED | 32)  # id 1
    types += btf_type(0, _KIND_PTR, 0, 0)  # id 2: void *
    types += btf_type(0, _KIND_FUNC_PROTO, 1, 1) + struct.pack("<II", string("ctx"), 2)  # id 3
    records = bytearray()
    for n, start in enumerate(sorted(set(func_starts))):
        types += btf_type(string(f"f{n}"), _KIND_FUNC, _LINKAGE_STATIC, 3)  # id 4 + n
        records += struct.pack("<II", start, 4 + n)
    header = struct.pack("<HBBIIIII", _MAGIC, 1, 0, 24, 0, len(types), len(types), len(strings))
    return FuncBtf(header + bytes(types) + bytes(strings), bytes(records))
