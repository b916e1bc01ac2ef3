"""How much stack each function of a component uses, as the verifier itself computes it."""

from __future__ import annotations

import os
import re

from bpfunits.errors import BpfUnitsError
from bpfunits.sys import bpf
from bpfunits.linker.btf import FUNC_INFO_REC_SIZE, FuncBtf


def stack_depths(
    prog_type: int, insns: bytes, btf: FuncBtf | None = None, *, expected_attach_type: int = 0
) -> tuple[int, ...]:
    """Bytes of stack each function uses (main first). The verifier sees every access to the
    frame, through r10, derived pointers or helpers, so it is the authority on which slots a
    component may touch."""
    btf_fd = bpf.btf_load(btf.blob) if btf else 0
    try:
        stats = bpf.prog_verify_stats(
            prog_type,
            insns,
            expected_attach_type=expected_attach_type,
            prog_btf_fd=btf_fd,
            func_info=btf.func_info if btf else b"",
            func_info_rec_size=FUNC_INFO_REC_SIZE,
        )
    finally:
        if btf_fd:
            os.close(btf_fd)
    match = re.search(r"^stack depth ([\d+]+)$", stats, re.MULTILINE)
    if not match:
        raise BpfUnitsError("the verifier did not report the stack depths")
    return tuple(int(d) for d in match.group(1).split("+"))
