"""The kernel's own BTF (/sys/kernel/btf/vmlinux): the type id of a kernel function, which a
program on an fentry or fexit hook is loaded against (its attach_btf_id). Only vmlinux: a module's
functions are in the module's BTF, which bpfunits does not attach to."""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path

from bpfunits.btf.types import (
    ARRAY, DATASEC, DECL_TAG, ENUM, ENUM64, FUNC, FUNC_PROTO, INT, STRUCT, UNION, VAR, BtfError, string_at,
)
from bpfunits.untrusted import MiB, UntrustedFileError, read_untrusted

VMLINUX = Path("/sys/kernel/btf/vmlinux")
MAX_SIZE = 256 * MiB  # vmlinux BTF is 5-6 MiB; kernel-provided, but read with a bound like every input
_MAGIC = 0xEB9F
# Bytes that follow a type's 12-byte header: fixed per kind, or per member (vlen of them).
_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_PER_MEMBER = {STRUCT: 12, UNION: 12, ENUM: 8, ENUM64: 12, FUNC_PROTO: 8, DATASEC: 12}


class NoKernelBtf(BtfError):
    """The kernel offers no BTF of its own (built without CONFIG_DEBUG_INFO_BTF)."""


class NoKernelFunction(BtfError):
    """The kernel's BTF has no function of that name."""


def func_ids(blob: bytes) -> dict[str, int]:
    """Every FUNC of a BTF blob by name, with its type id (the first of a name that is there twice)."""
    try:
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", blob)
        if magic != _MAGIC:
            raise BtfError("not BTF (bad magic)")
        start, end = hdr_len + type_off, hdr_len + type_off + type_len
        strings = blob[hdr_len + str_off: hdr_len + str_off + str_len]
        if end > len(blob):
            raise BtfError("malformed BTF (its types run past its end)")
        found: dict[str, int] = {}
        off, type_id = start, 0
        while off < end:
            name_off, info = struct.unpack_from("<II", blob, off)
            type_id += 1
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            if kind == FUNC:
                found.setdefault(string_at(strings, name_off), type_id)
            off += 12 + _FIXED.get(kind, 0) + _PER_MEMBER.get(kind, 0) * vlen
    except struct.error as exc:
        raise BtfError(f"malformed BTF ({exc})") from exc
    return found


@cache
def _kernel_funcs(path: Path) -> dict[str, int]:
    """Read once per process: the kernel's BTF does not change while it runs."""
    try:
        blob = read_untrusted(path, MAX_SIZE, strict=False)
    except UntrustedFileError as exc:
        if not path.exists():
            raise NoKernelBtf(f"this kernel has no BTF of its own (no {path}: built without "
                              "CONFIG_DEBUG_INFO_BTF)") from None
        raise NoKernelBtf(f"the kernel's BTF: {exc}") from exc
    try:
        return func_ids(blob)
    except BtfError as exc:
        raise NoKernelBtf(f"the kernel's BTF {path}: {exc}") from exc


def kernel_func_id(name: str, path: Path | None = None) -> int:
    """The type id of function `name` in the kernel's BTF (`path`: VMLINUX)."""
    path = path or VMLINUX
    type_id = _kernel_funcs(path).get(name)
    if type_id is None:
        raise NoKernelFunction(f"no function {name} in the kernel's BTF ({path}): it is not a kernel function, "
                               "is inlined, or is a module's")
    return type_id
