"""What chaining costs per component, measured with BPF_PROG_TEST_RUN on this machine.

Side by side in one run, for N trivial XDP components (r0 = XDP_PASS; exit):
  inline        the linker's default: every component spliced into one function
  inline+count  the same with per-component verdict counters
  call          every component called as a bpf-to-bpf subprogram
  tailcall      a tail-call chain of cooperative programs (L3AF style): program i tail-calls i+1
                through a program array (at most 33 tail calls, so N <= 34)
Each figure is the median over rounds of the kernel's average ns per run (repeat >= 1e6). The cost
per component is the slope between N = 8 and N = 64 (tail calls: N = 8 and 32, plus one program
tail-calling itself: 1 + 33 hops). Also: the time to link and to load (verify) each chain.

Run as root: .venv/bin/python benchmarks/chain_overhead.py [--rounds 5] [--repeat 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bpfunits.hooks import Hook  # noqa: E402
from bpfunits.sys import bpf  # noqa: E402
from bpfunits.linker import asm  # noqa: E402
from bpfunits.linker.asm import R0, R1, R2, R3, R6  # noqa: E402
from bpfunits.linker.component import Component  # noqa: E402
from bpfunits.linker.layout import Mode  # noqa: E402
from bpfunits.linker.progtype import expected_attach_type_of
from bpfunits.linker.linker import link_chain  # noqa: E402

SIZES = (1, 2, 8, 32, 64, 100)
SLOPE = (8, 64)
TAIL_SLOPE = (8, 32)
TAIL_MAX = 34  # 1 + 33 tail calls
FRAME = bytes(64)
XDP_PASS = 2
# The verdict must be unknown to the verifier, or it drops the dispatch as dead code: the
# queue index, 0 under test_run, plus XDP_PASS.
VERDICT = (asm.Insn(asm.LDX | asm.MEM | asm.W, R0, R1, 16), asm.add64_imm(R0, XDP_PASS))
TRIVIAL = asm.encode([*VERDICT, asm.exit_()])


def load_xdp(insns: bytes) -> int:
    return bpf.prog_load(bpf.ProgType.XDP, insns, expected_attach_type=expected_attach_type_of(Hook.XDP))


def tail_hop(prog_array: int, next_slot: int) -> bytes:
    """The trivial component's work, then, when it passes, a tail call to slot `next_slot`;
    when that slot is empty, pass."""
    return asm.encode(
        [
            asm.mov64_reg(R6, R1),
            *VERDICT,
            asm.jmp32_imm(asm.JNE, R0, XDP_PASS, 5),
            asm.mov64_reg(R1, R6),
            *asm.ld_map_fd(R2, prog_array),
            asm.mov64_imm(R3, next_slot),
            asm.call_helper(asm.HELPER_TAIL_CALL),
            asm.mov64_imm(R0, XDP_PASS),
            asm.exit_(),
        ]
    )


class Programs:
    """Every program measured, loaded once; close() releases them."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self.runs: dict[tuple[str, int], int] = {}  # (variant, N) -> fd to run
        self.load_ms: dict[tuple[str, int], float] = {}
        self.link_ms: dict[tuple[str, int], float] = {}

    def keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def add_linked(self, variant: str, n: int, *, counters: bool, force: Mode) -> None:
        components = [Component(f"c{i}", TRIVIAL, frozenset({XDP_PASS})) for i in range(n)]
        t0 = time.perf_counter()
        chain = link_chain(Hook.XDP, components, counters=counters, force=force)
        t1 = time.perf_counter()
        try:
            self.runs[variant, n] = self.keep(chain.load())
        finally:
            chain.close()  # the loaded program keeps its own reference to the counter map
        self.link_ms[variant, n] = (t1 - t0) * 1e3
        self.load_ms[variant, n] = (time.perf_counter() - t1) * 1e3

    def add_tail_chain(self, n: int) -> None:
        prog_array = self.keep(bpf.map_create(bpf.MapType.PROG_ARRAY, 4, 4, n, name="bu_bench_tail"))
        t0 = time.perf_counter()
        progs = [self.keep(load_xdp(tail_hop(prog_array, i + 1))) for i in range(n)]
        self.load_ms["tailcall", n] = (time.perf_counter() - t0) * 1e3
        for i, fd in enumerate(progs):
            bpf.map_update(prog_array, struct.pack("<I", i), struct.pack("<I", fd))
        self.runs["tailcall", n] = progs[0]

    def add_self_tail(self) -> None:
        prog_array, empty = (
            self.keep(bpf.map_create(bpf.MapType.PROG_ARRAY, 4, 4, 1, name="bu_bench_self")) for _ in range(2)
        )
        fd = self.keep(load_xdp(tail_hop(prog_array, 0)))
        bpf.map_update(prog_array, struct.pack("<I", 0), struct.pack("<I", fd))
        self.runs["self-tail", 1] = self.keep(load_xdp(tail_hop(empty, 0)))  # the same, its slot empty
        self.runs["self-tail", TAIL_MAX] = fd

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


def measure(programs: Programs, rounds: int, repeat: int) -> dict[tuple[str, int], float]:
    samples: dict[tuple[str, int], list[int]] = {key: [] for key in programs.runs}
    for _ in range(rounds):
        for key, fd in programs.runs.items():  # interleaved, so drift hits every variant alike
            run = bpf.prog_test_run(fd, FRAME, repeat=repeat)
            assert run.retval == XDP_PASS, (key, run.retval)
            samples[key].append(run.duration_ns)
    return {key: statistics.median(v) for key, v in samples.items()}


def slope(ns: dict[tuple[str, int], float], variant: str, lo: int, hi: int) -> float:
    return (ns[variant, hi] - ns[variant, lo]) / (hi - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1_000_000)
    args = parser.parse_args()
    started = time.perf_counter()
    programs = Programs()
    try:
        for n in SIZES:
            programs.add_linked("inline", n, counters=False, force=Mode.INLINE)
            programs.add_linked("inline+count", n, counters=True, force=Mode.INLINE)
            programs.add_linked("call", n, counters=False, force=Mode.CALL)
            if n <= TAIL_MAX:
                programs.add_tail_chain(n)
        programs.add_self_tail()
        ns = measure(programs, args.rounds, args.repeat)
    finally:
        programs.close()
    report(programs, ns, args, time.perf_counter() - started)


def report(programs: Programs, ns: dict, args: argparse.Namespace, elapsed: float) -> None:
    variants = ("inline", "inline+count", "call", "tailcall")

    def cell(d: dict, v: str, n: int) -> str:
        return f"{d[v, n]:10.1f}" if (v, n) in d else f"{'n/a':>10}"

    print(f"BPF_PROG_TEST_RUN, {len(FRAME)}-byte frame, repeat {args.repeat}, median of {args.rounds} rounds")
    print("\nns per packet")
    print(f"{'N':>5}" + "".join(f"{v:>14}" for v in variants))
    for n in SIZES:
        print(f"{n:>5}" + "".join(f"{cell(ns, v, n):>14}" for v in variants))
    lo, hi = SLOPE
    per = {v: slope(ns, v, lo, hi) for v in ("inline", "inline+count", "call")}
    per["tailcall"] = slope(ns, "tailcall", *TAIL_SLOPE)
    self_tail = (ns["self-tail", TAIL_MAX] - ns["self-tail", 1]) / (TAIL_MAX - 1)
    print(f"\nns per component (slope N={lo}..{hi}; tail calls N={TAIL_SLOPE[0]}..{TAIL_SLOPE[1]})")
    for v in variants:
        print(f"  {v:<14}{per[v]:8.2f}")
    print(f"  {'self tail call':<14}{self_tail:8.2f}   (one program, 1 vs 1+33 hops)")
    print(f"  {'counters cost':<14}{per['inline+count'] - per['inline']:8.2f}")
    tail_ref = min(per["tailcall"], self_tail)
    print(f"\ninline vs tail calls: {tail_ref / per['inline']:.1f}x cheaper (target >= 1.8x, <= 0.8 ns)")
    print(f"inline vs call mode:  {per['call'] / per['inline']:.1f}x cheaper (target >= 8x)")
    print(f"counters: {per['inline+count'] - per['inline']:.2f} ns per component (target <= 2 ns)")
    print("\nms to link (user space, incl. per-component stack measurement) / to load (verifier + JIT)")
    print(f"{'N':>5}" + "".join(f"{v:>20}" for v in variants))
    for n in SIZES:
        row = ""
        for v in variants:
            load = programs.load_ms.get((v, n))
            link = programs.link_ms.get((v, n))
            text = "n/a" if load is None else (f"{link:.1f} / {load:.1f}" if link is not None else f"- / {load:.1f}")
            row += f"{text:>20}"
        print(f"{n:>5}{row}")
    print(f"\ntotal benchmark time {elapsed:.0f} s")


if __name__ == "__main__":
    main()
