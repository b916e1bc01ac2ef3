"""What chaining costs per program on real traffic, against the kernel's own ways of chaining.

BPF_PROG_TEST_RUN (chain_overhead.py) cannot run tcx multi-attach or cls_bpf prio chains and keeps
every cache line hot. Here real frames cross a veth pair in a namespace of its own: a small C
sender (benchmarks/sender.c, built by `make -C benchmarks`) sends 64-byte frames with sendmmsg out
of one end, programs run on the other end's tc ingress or native (veth) XDP hook, and the
sender's CPU time per frame is the whole path's cost (the peer's receive path runs in its
softirqs; this kernel does no separate IRQ time accounting). Every program is the same component:
look at one byte of the frame, go on (tc: TCX_NEXT / TC_ACT_UNSPEC, XDP: XDP_PASS).

Side by side in one run, N = 8 and 32 programs, rounds interleaved (every set-up attached in turn,
so drift hits all alike), per set-up and round the least of a few runs, the median over rounds;
the cost per program is the median over rounds of the slope 8 -> 32:
  tc ingress   bpfunits chain: counters off; off with the blocks that end the chain left where
               the component has them (a taken jump per component: before hotpath.py); off with
               every verdict through the dispatch (before flow.py); on; on as before issue 18 (one
               region per component, every verdict counted by the generic code); on in that old
               layout with today's code. tcx multi-attach (one link per program), cls_bpf filters chained by prio,
               a tail-call chain (program i tail-calls i+1)
  XDP (veth)   the same bpfunits chains, a tail-call chain

Run as root: .venv/bin/python benchmarks/datapath_traffic.py [--rounds 9] [--frames 100000] [--repeat 3]
(`make bench-datapath`). Figures on a shared machine are noisy: read the medians and the ratios.

--libxdp: XDP only, against libxdp's dispatcher (xdp-loader loading the component's object,
build/bench/xdp_component.bpf.o, N times into one dispatcher: a call into a freplace program per
program). It needs BPF_PROG_TYPE_EXT, which some kernels refuse (this project's machine: EPERM),
and holds 10 programs at most, so the sizes are 2 and 10. --vm KERNEL runs it in a VM of the
kernel matrix's cache (scripts/kernels/fetch.sh) under qemu TCG with -icount, where the guest's
clock counts the instructions it runs (1 ns each): its "ns" are x86 instructions per frame after
the JIT, the same in every round, and leave out what hardware adds per call, return and branch
(SRSO "safe RET" on this project's machine). Read the ratios measured side by side in that run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from control_plane import busy_line, exit_with, run  # noqa: E402
from bpfunits.hooks import Hook, clsbpf  # noqa: E402
from bpfunits.hooks.xdp import XDP_FLAGS_DRV_MODE  # noqa: E402
from bpfunits.linker import asm, hotpath, layout, linker  # noqa: E402
from bpfunits.linker.asm import R0, R1, R2, R3, R4, R6, Insn  # noqa: E402
from bpfunits.linker.component import Component  # noqa: E402
from bpfunits.linker.counters import ChainCounters  # noqa: E402
from bpfunits.linker.layout import CounterLayout  # noqa: E402
from bpfunits.linker.progtype import expected_attach_type_of, prog_type_of  # noqa: E402
from bpfunits.sys import bpf, netns  # noqa: E402

SENDER = REPO / "build" / "bench" / "sender"
SIZES = (8, 32)
LIBXDP_SIZES = (2, 10)  # libxdp's dispatcher has 10 slots
COMPONENT_OBJECT = REPO / "build" / "bench" / "xdp_component.bpf.o"
KERNEL_CACHE = Path(os.environ.get("BPFUNITS_KERNEL_CACHE", "/var/lib/bpfunits/kernels"))
# Where a frame's data pointers sit in the hook's context (struct __sk_buff, struct xdp_md).
DATA_OFF = {True: (76, 80), False: (0, 4)}


def component(hook: Hook) -> list[Insn]:
    """Look at byte 14 of the frame: 0xff drops, anything else goes on (the sender sends 0)."""
    data, end = DATA_OFF[hook.is_tc]
    go_on, drop = hook.chain_end_verdict, hook.verdicts["shot" if hook.is_tc else "drop"]
    return [
        Insn(asm.LDX | asm.MEM | asm.W, R2, R1, data),
        Insn(asm.LDX | asm.MEM | asm.W, R3, R1, end),
        asm.mov64_imm(R0, go_on),
        asm.mov64_reg(R4, R2),
        asm.add64_imm(R4, 15),
        Insn(asm.JMP | asm.JGT | asm.X, R4, R3, 3),
        Insn(asm.LDX | asm.MEM | asm.B, R4, R2, 14),
        asm.jmp_imm(asm.JNE, R4, 0xFF, 1),
        asm.mov64_imm(R0, drop),
        asm.exit_(),
    ]


def tail_hop(hook: Hook, prog_array: int, next_slot: int) -> bytes:
    """The component, then, when it goes on, a tail call to slot `next_slot` (empty: go on)."""
    work = component(hook)[:-1]
    return asm.encode([
        asm.mov64_reg(R6, R1), *work,
        asm.jmp32_imm(asm.JNE, R0, hook.chain_end_verdict, 5),
        asm.mov64_reg(R1, R6), *asm.ld_map_fd(R2, prog_array), asm.mov64_imm(R3, next_slot),
        asm.call_helper(asm.HELPER_TAIL_CALL),
        asm.mov64_imm(R0, hook.chain_end_verdict),
        asm.exit_(),
    ])  # fmt: skip


def inline_floor(hook: Hook, n: int) -> bytes:
    """The component's own work N times in one program, with nothing between the copies: what no
    way of chaining N programs can go under (no call, no verdict test, no context restored).
    Each copy reads the frame's bounds and byte 14; 0xff jumps to the drop at the end."""
    data, end = DATA_OFF[hook.is_tc]
    go_on, drop = hook.chain_end_verdict, hook.verdicts["shot" if hook.is_tc else "drop"]
    copy = 7
    insns: list[Insn] = []
    for i in range(n):
        to_pass = (n - i) * copy - 5  # from the bounds test (5th of the copy) to the go-on exit,
        # and from the byte test (7th) to the drop
        insns += [
            Insn(asm.LDX | asm.MEM | asm.W, R2, R1, data),
            Insn(asm.LDX | asm.MEM | asm.W, R3, R1, end),
            asm.mov64_reg(R4, R2),
            asm.add64_imm(R4, 15),
            Insn(asm.JMP | asm.JGT | asm.X, R4, R3, to_pass),
            Insn(asm.LDX | asm.MEM | asm.B, R4, R2, 14),
            asm.jmp_imm(asm.JEQ, R4, 0xFF, to_pass),  # to the drop, 2 further from here
        ]
    return asm.encode([*insns, asm.mov64_imm(R0, go_on), asm.exit_(), asm.mov64_imm(R0, drop), asm.exit_()])


@dataclass(frozen=True)
class ComponentMajor(CounterLayout):
    """The counter layout before issue 18, for the side-by-side: one region per component (one
    u64 per verdict), so each component of a chain writes a cache line of its own."""

    @property
    def row_bytes(self) -> int:
        return 8

    @property
    def value_size(self) -> int:
        return self.components * self.rows * 8

    def offset(self, component: int, row: int) -> int:
        return (component * self.rows + row) * 8


class _ComponentMajorCounters(ChainCounters):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)  # its map is at least as large as the old layout needs
        c = self.layout
        self.layout = ComponentMajor(c.map_fd, c.low, c.high, c.proceed_on, c.reachable)


def _count_then_dispatch(
    e: layout._Emitter, c: CounterLayout, i: int, slot: int, proceed_on: frozenset[int], far: bool
) -> bool:
    """The counting before issue 18: every verdict through the generic count, then the dispatch."""
    e.emit(*layout._count_any(c, i, slot))
    layout._emit_dispatch(e, proceed_on, far)
    return False


def _through_dispatch(i: int, part: layout.Part, *_: object) -> dict[int, object]:
    """Every exit to the dispatch, as before the linker knew any verdict (see flow.py)."""
    return {pc: ("end", i) for pc, insn in enumerate(part.shape.main) if insn.is_exit}


def linking_as(variant: str) -> AbstractContextManager[object]:
    """link_chain as it links `variant`: "blocks in place", no block moved off the way on
    (before hotpath.py); "dispatched", every verdict through the dispatch and
    the context reloaded after it (before flow.py); "old layout", the counters of before issue
    18; "before", both and the counting code of before issue 18 (which counts in the dispatch)."""
    stack = ExitStack()
    if variant.endswith(("old layout", "before")):
        stack.enter_context(mock.patch.object(linker, "ChainCounters", _ComponentMajorCounters))
    if variant.endswith("before"):
        stack.enter_context(mock.patch.object(layout, "_emit_counted_dispatch", _count_then_dispatch))
    if variant.endswith("blocks in place"):
        stack.enter_context(mock.patch.object(hotpath, "cold_blocks", lambda *_: {}))
    if variant.endswith(("before", "dispatched")):
        stack.enter_context(mock.patch.object(layout, "_routes", _through_dispatch))
        stack.enter_context(mock.patch.object(layout, "_clobbers_context", lambda *_: True))
    return stack


@dataclass
class Setup:
    """One way of running N programs on a hook: what attaches them and what detaches them."""

    hook: Hook
    variant: str
    n: int
    attach: Callable[[], None]
    detach: Callable[[], None]


@dataclass
class Bench:
    ns: str
    sender_if: str
    receiver_if: str
    ifindex: int
    batch: int
    evict_kb: int
    fds: list[int] = field(default_factory=list)
    links: list[int] = field(default_factory=list)

    def keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def load(self, hook: Hook, insns: bytes) -> int:
        return self.keep(bpf.prog_load(prog_type_of(hook), insns, expected_attach_type=expected_attach_type_of(hook)))

    # --- attaching, inside the namespace ---------------------------------------------------

    def link(self, hook: Hook, fd: int) -> None:
        with netns.inside(self.ns):
            if hook.is_tc:
                self.links.append(bpf.link_create(fd, self.ifindex, bpf.AttachType.TCX_INGRESS))
            else:
                self.links.append(bpf.link_create(fd, self.ifindex, bpf.AttachType.XDP, flags=XDP_FLAGS_DRV_MODE))

    def unlink(self) -> None:
        while self.links:
            os.close(self.links.pop())

    def filters(self, fds: list[int]) -> None:
        with netns.inside(self.ns):
            for prio, fd in enumerate(fds, 1):
                clsbpf.put(self.ifindex, Hook.TC_INGRESS, fd, clsbpf.Slot(prio, prio), f"bench{prio}")

    def no_filters(self) -> None:
        with netns.inside(self.ns):
            clsbpf.delete_clsact(self.ifindex)

    # --- the set-ups -------------------------------------------------------------------------

    def chain(self, hook: Hook, n: int, variant: str) -> Setup:
        go_on = frozenset({hook.chain_end_verdict})
        components = [Component(f"c{i}", asm.encode(component(hook)), go_on) for i in range(n)]
        counters = "+counters" in variant
        with linking_as(variant):
            chain = linker.link_chain(hook, components, counters=counters)
        try:
            fd = self.keep(chain.load())
        finally:
            chain.close()  # the loaded program keeps its counter map
        return Setup(hook, variant, n, lambda: self.link(hook, fd), self.unlink)

    def floor(self, hook: Hook, n: int) -> Setup:
        fd = self.load(hook, inline_floor(hook, n))
        return Setup(hook, FLOOR, n, lambda: self.link(hook, fd), self.unlink)

    def tcx(self, n: int) -> Setup:
        fds = [self.load(Hook.TC_INGRESS, asm.encode(component(Hook.TC_INGRESS))) for _ in range(n)]

        def attach() -> None:
            for fd in fds:
                self.link(Hook.TC_INGRESS, fd)

        return Setup(Hook.TC_INGRESS, "tcx multi-attach", n, attach, self.unlink)

    def cls_bpf(self, n: int) -> Setup:
        fds = [self.load(Hook.TC_INGRESS, asm.encode(component(Hook.TC_INGRESS))) for _ in range(n)]
        return Setup(Hook.TC_INGRESS, "cls_bpf prio chain", n, lambda: self.filters(fds), self.no_filters)

    def tail_calls(self, hook: Hook, n: int) -> Setup:
        table = self.keep(bpf.map_create(bpf.MapType.PROG_ARRAY, 4, 4, n + 1, name="bu_bench_tail"))
        progs = [self.load(hook, tail_hop(hook, table, i + 1)) for i in range(n)]
        for i, fd in enumerate(progs):
            bpf.map_update(table, struct.pack("<I", i), struct.pack("<I", fd))
        return Setup(hook, "tail-call chain", n, lambda: self.link(hook, progs[0]), self.unlink)

    def libxdp(self, n: int) -> Setup:
        def xdp_loader(*args: str) -> None:
            done = subprocess.run(["nsenter", f"--net={netns.ns_path(self.ns)}", "xdp-loader", *args],
                                  capture_output=True, text=True)
            if done.returncode:
                # Where the kernel refuses freplace (EPERM), libxdp cannot build its dispatcher.
                raise SystemExit(f"xdp-loader {args[0]} failed ({done.returncode}): {done.stderr.strip()}")

        return Setup(Hook.XDP, "libxdp dispatcher", n,
                     lambda: xdp_loader("load", "-m", "native", self.receiver_if, *[str(COMPONENT_OBJECT)] * n),
                     lambda: xdp_loader("unload", "--all", self.receiver_if))

    def close(self) -> None:
        """Detach, and close every program and map loaded so far."""
        self.unlink()
        while self.fds:
            os.close(self.fds.pop())

    # --- traffic ------------------------------------------------------------------------------

    def send(self, frames: int) -> float:
        """The sender's CPU ns per frame."""
        out = subprocess.run(["nsenter", f"--net={netns.ns_path(self.ns)}", str(SENDER), self.sender_if, str(frames),
                              str(self.batch), str(self.evict_kb)], check=True, capture_output=True, text=True).stdout
        return float(out.split()[0])


@contextmanager
def bench(batch: int, evict_kb: int) -> Iterator[Bench]:
    tag = secrets.token_hex(3)
    ns, sender_if, receiver_if = f"bpfd-{tag}", f"bpfd{tag}s", f"bpfd{tag}r"
    run("ip", "netns", "add", ns)
    b = None
    try:
        run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1")
        run("ip", "-n", ns, "link", "add", sender_if, "type", "veth", "peer", "name", receiver_if)
        for ifname in (sender_if, receiver_if):
            run("ip", "-n", ns, "link", "set", ifname, "up")
        b = Bench(ns, sender_if, receiver_if, netns.ifindex(receiver_if, ns), batch, evict_kb)
        yield b
    finally:
        if b:
            b.close()
        # Deleting the namespace takes the veth pair, and with it everything attached to it.
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


CHAINS = ("bpfunits", "bpfunits, blocks in place", "bpfunits, dispatched", "bpfunits+counters",
          "bpfunits+counters, old layout", "bpfunits+counters, before")
FLOOR = "inline floor (no chaining)"
TC_VARIANTS = (*CHAINS, FLOOR, "tcx multi-attach", "cls_bpf prio chain", "tail-call chain")
XDP_VARIANTS = (*CHAINS, FLOOR, "tail-call chain")
LIBXDP_CHAINS = ("bpfunits", "bpfunits, blocks in place", "bpfunits, dispatched", "bpfunits+counters")
LIBXDP_VARIANTS = (*LIBXDP_CHAINS, "tail-call chain", "libxdp dispatcher")


def setups(b: Bench, libxdp: bool) -> list[Setup]:
    """Every set-up, the two sizes of one variant next to each other (their difference is the slope)."""
    out = []
    if libxdp:
        for variant in LIBXDP_CHAINS:
            out += [b.chain(Hook.XDP, n, variant) for n in LIBXDP_SIZES]
        out += [b.tail_calls(Hook.XDP, n) for n in LIBXDP_SIZES] + [b.libxdp(n) for n in LIBXDP_SIZES]
    else:
        for hook in (Hook.TC_INGRESS, Hook.XDP):
            for variant in CHAINS:
                out += [b.chain(hook, n, variant) for n in SIZES]
            out += [b.floor(hook, n) for n in SIZES] + [b.tail_calls(hook, n) for n in SIZES]
        out += [b.tcx(n) for n in SIZES] + [b.cls_bpf(n) for n in SIZES]
    out.append(Setup(Hook.TC_INGRESS, "no program", 0, lambda: None, lambda: None))
    return out


Key = tuple[str, str, int]
BUSY = 1.05  # the path without programs, slowest round against fastest, beyond which a run says it is noise


def measure(b: Bench, make: Callable[[], list[Setup]], rounds: int, frames: int, repeat: int) -> dict[Key, list[float]]:
    """Per set-up and round, the least of `repeat` sends: other work on the machine only ever adds
    to a send's cost (preempting it, evicting its caches), so the least is the closest to the path's.

    Each round loads its programs anew (`make`). What stays fixed while a program is loaded (where
    the JIT put it: its alignment, the cache sets and branch predictor entries it shares) moved
    one chain's slope from 1.6 to 3.3 ns per program between two runs of the same code, each with
    its rounds within 0.5 ns of one another; loaded once per round, the median over rounds takes
    it in."""
    b.send(frames // 10)  # warm-up
    samples: dict[Key, list[float]] = {}
    for r in range(rounds):
        try:
            for s in make():
                s.attach()
                try:
                    least = min(b.send(frames) for _ in range(repeat))
                    samples.setdefault((s.hook.value, s.variant, s.n), []).append(least)
                finally:
                    s.detach()
        finally:
            b.close()
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    return samples


def slopes_of(samples: dict[Key, list[float]], hooks: tuple[tuple[Hook, tuple[str, ...]], ...],
              sizes: tuple[int, int]) -> dict[str, float]:
    """Per set-up the median ns per frame; per variant the median over rounds of each round's
    slope (its two sizes ran back to back, so the slow drift of a busy machine cancels)."""
    lo, hi = sizes
    ns = {key: statistics.median(v) for key, v in samples.items()}
    bare = samples["tc-ingress", "no program", 0]
    print(f"no program on the hook: {ns['tc-ingress', 'no program', 0]:.0f} ns per frame "
          f"(rounds {min(bare):.0f}-{max(bare):.0f})")
    if max(bare) > BUSY * min(bare):
        # Slopes of about 1 ns need a path that holds still to a fraction of a percent; where the
        # same path moves by this much from round to round, the host (other guests of it too,
        # which no load average here shows) is busy, and the slopes below are that noise.
        print(f"WARNING: the path without programs moved by {max(bare) / min(bare) - 1:.0%} between rounds "
              f"(more than {BUSY - 1:.0%}): the machine is busy, the per-program figures below are noise")
    slopes = {}
    for hook, variants in hooks:
        print(f"\n{hook.value}{' (veth native XDP)' if not hook.is_tc else ''}")
        print(f"  {'':<32}{f'N={lo}':>9}{f'N={hi}':>9}{'ns/program':>12}  (per round)")
        for v in variants:
            per_round = [(z - a) / (hi - lo) for a, z in
                         zip(samples[hook.value, v, lo], samples[hook.value, v, hi], strict=True)]
            key = f"{hook.value} {v}"
            slopes[key] = statistics.median(per_round)
            spread = " ".join(f"{x:.1f}" for x in sorted(per_round))
            print(f"  {v:<32}{ns[hook.value, v, lo]:9.0f}{ns[hook.value, v, hi]:9.0f}{slopes[key]:12.2f}  ({spread})")
    return slopes


def header(args: argparse.Namespace) -> None:
    print(f"real frames through a veth pair: the least of {args.repeat} runs of {args.frames} 64-byte frames, "
          f"sendmmsg of {args.batch}"
          f"{f', {args.evict_kb} KiB written between batches' if args.evict_kb else ''}; "
          f"{args.rounds} interleaved rounds; sender CPU ns per frame (median)")


def ratio_of(slopes: dict[str, float]) -> Callable[[str, float], str]:
    def ratio(other: str, ours: float) -> str:
        return f"{slopes[other] / ours:.1f}x" if ours > 0 else "n/a (slope <= 0: noise)"

    return ratio


def report_libxdp(samples: dict[Key, list[float]], args: argparse.Namespace) -> dict[str, float]:
    header(args)
    print(f"kernel {os.uname().release}")
    slopes = slopes_of(samples, ((Hook.XDP, LIBXDP_VARIANTS),), LIBXDP_SIZES)
    ratio = ratio_of(slopes)
    on, off = slopes["xdp bpfunits+counters"], slopes["xdp bpfunits"]
    print(f"\nper program, XDP, {LIBXDP_SIZES[0]} -> {LIBXDP_SIZES[1]} programs (the dispatcher holds 10); "
          "ratios to the bpfunits chain, side by side in this run")
    for other in ("libxdp dispatcher", "tail-call chain"):
        print(f"  {other:<20} {slopes['xdp ' + other]:8.2f} ns   {ratio('xdp ' + other, on):>8} counters on   "
              f"{ratio('xdp ' + other, off):>8} off")
    return slopes


def report(samples: dict[Key, list[float]], args: argparse.Namespace) -> dict[str, float]:
    header(args)
    slopes = slopes_of(samples, ((Hook.TC_INGRESS, TC_VARIANTS), (Hook.XDP, XDP_VARIANTS)), SIZES)
    ratio = ratio_of(slopes)
    on, off = slopes["tc-ingress bpfunits+counters"], slopes["tc-ingress bpfunits"]

    print("\nper program, tc ingress (targets: counters on <= 2.0 ns, off <= 1.5 ns; "
          ">= 10x cheaper than tcx, >= 20x than cls_bpf)")
    old, before = slopes["tc-ingress bpfunits+counters, old layout"], slopes["tc-ingress bpfunits+counters, before"]
    print(f"  bpfunits, counters on:  {on:.2f} ns   (before issue 18 {before:.2f}; old layout, new code {old:.2f})")
    floor = slopes[f"tc-ingress {FLOOR}"]
    print(f"  bpfunits, counters off: {off:.2f} ns   (blocks in place: "
          f"{slopes['tc-ingress bpfunits, blocks in place']:.2f}; every verdict through the dispatch: "
          f"{slopes['tc-ingress bpfunits, dispatched']:.2f}; the component's own work inlined, no chaining: "
          f"{floor:.2f})")
    for other in ("tcx multi-attach", "cls_bpf prio chain", "tail-call chain"):
        print(f"  vs {other:<20} counters on {ratio('tc-ingress ' + other, on):>8}   "
              f"off {ratio('tc-ingress ' + other, off):>8}")
    x_on, x_off = slopes["xdp bpfunits+counters"], slopes["xdp bpfunits"]
    print(f"XDP: counters on {x_on:.2f} ns (before {slopes['xdp bpfunits+counters, before']:.2f}), "
          f"off {x_off:.2f} ns (blocks in place {slopes['xdp bpfunits, blocks in place']:.2f}; "
          f"through the dispatch {slopes['xdp bpfunits, dispatched']:.2f}; inlined, no chaining: "
          f"{slopes['xdp ' + FLOOR]:.2f}); "
          f"tail calls {ratio('xdp tail-call chain', x_on)} (on) / "
          f"{ratio('xdp tail-call chain', x_off)} (off) dearer")
    return slopes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per set-up and round; the least counts")
    parser.add_argument("--batch", type=int, default=64, help="frames per sendmmsg (1..64)")
    parser.add_argument("--evict-kb", type=int, default=0,
                        help="KiB of memory the sender writes after each batch (a busy machine's cache pressure)")
    parser.add_argument("--libxdp", action="store_true",
                        help="XDP only, against libxdp's dispatcher (needs freplace), 2 -> 10 programs")
    parser.add_argument("--vm", metavar="KERNEL",
                        help="run with --libxdp in a VM of this kernel of the matrix's cache (TCG: read the ratios)")
    args = parser.parse_args()
    run("make", "-s", "-C", str(REPO / "benchmarks"))
    if args.vm:
        return in_vm(args.vm, [a for a in sys.argv[1:] if a not in ("--vm", args.vm, "--libxdp")])
    started, load_before = time.monotonic(), os.getloadavg()[0]
    with bench(args.batch, args.evict_kb) as b:
        samples = measure(b, lambda: setups(b, args.libxdp), args.rounds, args.frames, args.repeat)
    (report_libxdp if args.libxdp else report)(samples, args)
    print(f"\n{busy_line(load_before, started)}")
    return 0


def in_vm(kernel: str, argv: list[str]) -> int:
    """This benchmark with --libxdp in a VM booted from the kernel matrix's cache, as
    scripts/kernels/run-vm.sh boots one (one VM at a time on this machine); prints its report."""
    image = (KERNEL_CACHE / kernel / "vmlinuz").resolve()
    if not image.exists():
        raise SystemExit(f"no kernel {kernel} in {KERNEL_CACHE}: bash scripts/kernels/fetch.sh {kernel}")
    out = REPO / "build" / "bench" / f"vm-{kernel}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    guest = out / "guest.sh"  # a copy: bash reads a script while it runs it
    guest.write_text((REPO / "benchmarks" / "vm-guest.sh").read_text())
    # The guest's root is read-only: compile here what it imports (under TCG that takes minutes).
    run(sys.executable, "-m", "compileall", "-q", "-j", "0", str(REPO / "bpfunits"), str(REPO / "benchmarks"))
    started, load_before = time.monotonic(), os.getloadavg()[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    # -icount: the guest's clock counts the instructions it runs (1 ns each), so what the host's
    # other work takes from qemu never shows in the guest's CPU time: the figures are instruction
    # counts, deterministic, where wall-clock TCG on a busy host varied by hundreds of ns per program.
    with open(out / "console.log", "w") as console:
        subprocess.run(["vng", "--run", str(image), "--disable-kvm", "--qemu-opts=-cpu qemu64 -icount shift=0",
                        "--cpus", "2", "--memory", "2G", "--rwdir", str(out), "--exec",
                        f"bash {guest} {out} {REPO} {sys.executable} {' '.join(argv)}"],
                       stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, env=env, check=False)
    report_file = out / "bench.txt"
    if not report_file.exists() or (out / "bench.rc").read_text().strip() != "0":
        print(f"the run in the VM failed: see {out} (guest.log, bench.err, console.log)", file=sys.stderr)
        return 1
    print(f"in a VM under qemu TCG with -icount (no KVM): each 'ns' is one guest instruction; read the ratios\n"
          f"{report_file.read_text()}host: {busy_line(load_before, started)}")
    return 0


if __name__ == "__main__":
    exit_with(main)
