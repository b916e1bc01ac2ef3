"""Issue 11 #16, the loader's points: prog_load reported the errno of its second load (the one with a
log: ENOSPC when the log fills) instead of the real error, and gave up on EAGAIN (a signal during
verification) where libbpf retries; libbpf's output kept only the first MiB of the verifier's log,
losing its end, which says why."""

from __future__ import annotations

import errno
import os
import signal
import struct

import pytest

from bpfunits.hooks import Hook
from bpfunits.sys import bpf
from bpfunits.load.load import ProgramRejected, load_object_program

pytestmark = pytest.mark.kernel


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


EXIT = insn(0x95)
R0_IS_2 = insn(0xB7, 0, imm=2)  # mov64 r0, 2: XDP_PASS


def slow_to_verify(iterations: int) -> bytes:
    """A bounded loop the verifier walks once per iteration: r1 = 0; do r1 += 1 while r1 < N."""
    return insn(0xB7, 1) + insn(0x07, 1, imm=1) + insn(0xA5, 1, off=-2, imm=iterations) + R0_IS_2 + EXIT


def test_prog_load_keeps_the_first_errno_when_the_log_load_fails_otherwise():
    with pytest.raises(bpf.VerifierError) as caught:
        bpf.prog_load(bpf.ProgType.XDP, EXIT, log_size=32)  # R0 never set; 32 bytes of log overflow
    assert caught.value.errno == errno.EACCES


def test_prog_load_retries_when_a_signal_interrupts_verification():
    interrupted = []
    previous = signal.signal(signal.SIGALRM, lambda *_: interrupted.append(1))
    signal.setitimer(signal.ITIMER_REAL, 0.005)
    try:
        # A small log: a second load with a log would fail with ENOSPC even when verification passes.
        fd = bpf.prog_load(bpf.ProgType.XDP, slow_to_verify(400_000), log_size=32)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    os.close(fd)
    assert interrupted, "the load finished before the timer: make the loop longer"


def test_libbpf_output_keeps_the_verifier_logs_end(bpf_objects):
    with pytest.raises(ProgramRejected) as caught:
        load_object_program(bpf_objects / "longlog.bpf.o", Hook.XDP, None)
    assert len(caught.value.log) > 1 << 20
    assert "invalid access to packet" in str(caught.value)  # its last lines
    assert "processed" in caught.value.log.splitlines()[-1]
