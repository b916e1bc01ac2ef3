"""How the control plane's cost grows with the node (issue 12): curves over 10, 100, 1,000 and
2,000 hooks, with the real daemon and the real kernel.

For each size, N veth pairs in one namespace of its own (the units take the ends bpfbNN, 2 hooks
each; their peers bpfqNN carry nothing): a glob unit on XDP (bpf/counter.bpf.o) and one on
tc-ingress (bpf/examples/counter.bpf.o) over `bpfb*`, and 2 edit units on bpfb00's XDP hook
whose order a drop-in flips. Then:

- cold `bpfunits apply` (a process, fresh state), and a second one with nothing to do;
- the kernel's own share of the cold apply, side by side: a bare 2-instruction program attached
  by this process through an XDP link and a tcx link on 100 of the peers (bpfqNN), timed per
  attach, times the hooks. tcx's attach swaps its entry and waits for an RCU grace period
  (`tcx_entry_sync()`, `synchronize_rcu()`) under the RTNL lock, so tcx attaches cannot overlap
  and their sum is a floor no user space can go under;
- `bpfunits daemon` started (a process; ready = its first, full reconcile) and, while it runs:
  - one unit edit -> the new order live on bpfb00 (a drop-in renamed into place), 20 times;
  - one new interface (a veth pair, `ip link add`) -> its XDP and tc chains attached, 10 times;
  - 100 interfaces created by one `ip -batch` -> all 200 chains attached;
  - idle for --idle seconds (the resync every 30 s included): CPU share and RSS;
  - 10 scrapes of its Prometheus metrics (read from the kernel at each), after a first one that
    opens every chain's counters: time, the daemon's CPU time per scrape, and samples;
  - the daemon's reconciles by reason, from its log: none may come from its own changes.

Every figure is printed per size, so the growth is visible. Run as root:
  .venv/bin/python benchmarks/node_scale.py [--pairs 5,50,500,1000] [--idle 60]
About 8 minutes with the defaults. Everything it creates is removed, even on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from control_plane import (  # noqa: E402
    TC_OBJECT, XDP_OBJECT, ChainWatch, DaemonProcess, Sandbox, busy_line, byte_compiled, cpu_seconds, exit_with, ms,
    percentile, rss_mb, sandbox, timed_apply, unit_text, write_atomic,
)
from bpfunits.hooks import Hook  # noqa: E402
from bpfunits.hooks import tcx  # noqa: E402
from bpfunits.linker import asm  # noqa: E402
from bpfunits.sys import bpf, netns, rtnl  # noqa: E402
from bpfunits.sys.rtnl import RtnlError  # noqa: E402

EDITS = ("ea", "eb")
DROP_IN = "50-bench.conf"
POLL_S = 0.005
FLOOR_SAMPLE = 100  # bare attaches per kind to time the kernel's floor
TIMEOUT_S = 60.0


def write_units(box: Sandbox) -> ChainWatch:
    (box.units / "gx.unit").write_text(unit_text(XDP_OBJECT, "xdp", "bpfb*"))
    (box.units / "gt.unit").write_text(unit_text(TC_OBJECT, "tc-ingress", "bpfb*", name="tc_counter"))
    for name in EDITS:
        (box.units / f"{name}.unit").write_text(unit_text(XDP_OBJECT, "xdp", box.interfaces[0]))
    write_atomic(box.units / f"{EDITS[0]}.d" / DROP_IN, edit_text(0)[1])
    return ChainWatch(box, box.interfaces[0], Hook.XDP)


def edit_text(number: int) -> tuple[tuple[str, ...], str]:
    """The chain on bpfb00 after edit `number` (the glob unit gx sorts last), and the drop-in."""
    if number % 2:
        return ("eb", "ea", "gx"), "[Unit]\nAfter=eb\n"
    return ("ea", "eb", "gx"), "[Unit]\nBefore=eb\n"


def attached(box: Sandbox, names: list[str]) -> bool:
    """Whether every interface of `names` runs an XDP and a tc-ingress program. Each is read by
    its own requests: a listing of every interface, 5 ms apart, would cost this process more
    than the daemon's reconcile at 2,000 hooks, and take the CPU it measures."""
    with netns.inside(box.ns):
        for name in names:
            try:
                link = rtnl.interface(socket.if_nametoindex(name))
            except (OSError, RtnlError):
                return False  # not there yet
            if not link.xdp_prog_id or not tcx.query(link.index, Hook.TC_INGRESS).prog_ids:
                return False
    return True


def wait_attached(box: Sandbox, names: list[str], since: float) -> float:
    while not attached(box, names):
        if time.monotonic() - since > TIMEOUT_S:
            raise RuntimeError(f"{names[:3]}...: not attached within {TIMEOUT_S} s")
        time.sleep(POLL_S)
    return time.monotonic() - since


def add_pairs(box: Sandbox, names: list[str]) -> float:
    """Create veth pairs NAME / NAME's peer in one `ip -batch`; returns when it was started."""
    lines = [f"link add {n} type veth peer name {n.replace('bpfb', 'bpfq', 1)}" for n in names]
    started = time.monotonic()
    subprocess.run(["ip", "-n", box.ns, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True,
                   capture_output=True)
    return started


def del_pairs(box: Sandbox, names: list[str]) -> None:
    subprocess.run(["ip", "-n", box.ns, "-batch", "-"], input="".join(f"link del {n}\n" for n in names),
                   text=True, check=True, capture_output=True)


@dataclass
class Size:
    hooks: int
    cold_s: float = 0.0
    floor_s: float = 0.0  # the kernel's own time for the cold apply's attaches
    second_s: float = 0.0
    ready_s: float = 0.0
    edit_ms: list[float] = field(default_factory=list)
    new_if_ms: list[float] = field(default_factory=list)
    hundred_s: float = 0.0
    idle_cpu: float = 0.0
    rss_mb: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    scrape_ms: list[float] = field(default_factory=list)
    scrape_cpu_ms: float = 0.0
    samples: int = 0


def attach_floor_s(box: Sandbox, pairs: int) -> float:
    """What the kernel alone takes to attach `pairs` XDP and `pairs` tcx programs here: bare
    attaches timed on the peers (which carry nothing), detached again when their link's fd closes."""
    peers = [n.replace("bpfb", "bpfq", 1) for n in box.interfaces[:FLOOR_SAMPLE]]
    insns = b"".join(i.encode() for i in (asm.mov64_imm(0, 2), asm.exit_()))
    per_kind = []
    with netns.inside(box.ns):
        for prog_type, attach_type in ((bpf.ProgType.XDP, bpf.AttachType.XDP),
                                       (bpf.ProgType.SCHED_CLS, bpf.AttachType.TCX_INGRESS)):
            prog = bpf.prog_load(prog_type, insns)
            links = []
            try:
                start = time.perf_counter()
                for name in peers:
                    links.append(bpf.link_create(prog, socket.if_nametoindex(name), attach_type))
                per_kind.append((time.perf_counter() - start) / len(peers))
            finally:
                for fd in [prog, *links]:
                    os.close(fd)
    return sum(per_kind) * pairs


def reasons(d: DaemonProcess) -> Counter:
    """The daemon's reconciles by reason, from its log."""
    found: Counter = Counter()
    for line in d.log.read_text().splitlines():
        if line.startswith("{"):
            message = json.loads(line)["message"]
            if message.startswith("reconcile: "):
                found[message.removeprefix("reconcile: ").split(" (")[0]] += 1
    return found


def measure(pairs: int, idle_s: float, edits: int, new_ifs: int) -> Size:
    with sandbox(pairs) as box:
        watch = write_units(box)
        size = Size(hooks=2 * pairs)
        size.cold_s = timed_apply(box)
        size.floor_s = attach_floor_s(box, pairs)
        size.second_s = timed_apply(box)
        started = time.monotonic()
        d = DaemonProcess(box)
        try:
            size.ready_s = time.monotonic() - started
            watch.wait_for(edit_text(0)[0], time.monotonic())
            for number in range(1, edits + 1):
                want, text = edit_text(number)
                since = write_atomic(box.units / f"{EDITS[0]}.d" / DROP_IN, text)
                size.edit_ms.append(ms(watch.wait_for(want, since)))
                time.sleep(0.05)
            for i in range(new_ifs):
                name = [f"bpfbn{i:03d}"]
                size.new_if_ms.append(ms(wait_attached(box, name, add_pairs(box, name))))
                del_pairs(box, name)
                time.sleep(0.1)
            hundred = [f"bpfbh{i:03d}" for i in range(100)]
            size.hundred_s = wait_attached(box, hundred, add_pairs(box, hundred))
            del_pairs(box, hundred)
            time.sleep(1.0)
            pid = d.proc.pid
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            samples = []
            while time.monotonic() - t0 < idle_s:
                samples.append(rss_mb(pid))
                time.sleep(min(1.0, max(0.0, idle_s - (time.monotonic() - t0))))
            size.idle_cpu = 100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            size.rss_mb = max(samples) if samples else rss_mb(pid)
            d.scrape_ms(1)  # the first opens every chain's counters
            size.scrape_ms, size.scrape_cpu_ms, size.samples = d.scrape_ms(10)
            size.reasons = reasons(d)
        finally:
            d.stop()
        return size


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", default="5,50,500,1000", help="veth pairs per size (2 hooks each)")
    p.add_argument("--idle", type=float, default=60.0, help="seconds of idle daemon per size")
    p.add_argument("--edits", type=int, default=20)
    p.add_argument("--new-interfaces", type=int, default=10)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    byte_compiled()
    sizes = []
    print(f"{'hooks':>6} {'cold':>7} {'kernel':>7} {'2nd':>6} {'ready':>6} {'edit p50/p99 ms':>16} "
          f"{'new if p50/p99 ms':>18} {'100 ifs':>8} {'idle CPU':>9} {'RSS':>7} {'scrape p50/max ms':>17} "
          f"{'CPU':>5} {'samples':>8}  "
          "reconciles by reason", flush=True)
    for pairs in (int(n) for n in args.pairs.split(",")):
        s = measure(pairs, args.idle, args.edits, args.new_interfaces)
        sizes.append(s)
        print(f"{s.hooks:6} {s.cold_s:6.2f}s {s.floor_s:6.2f}s {s.second_s:5.2f}s {s.ready_s:5.2f}s "
              f"{percentile(s.edit_ms, 50):7.0f}/{percentile(s.edit_ms, 99):<8.0f} "
              f"{percentile(s.new_if_ms, 50):8.0f}/{percentile(s.new_if_ms, 99):<9.0f} "
              f"{s.hundred_s:7.2f}s {s.idle_cpu:8.2f}% {s.rss_mb:5.0f}MB "
              f"{percentile(s.scrape_ms, 50):9.0f}/{max(s.scrape_ms):<7.0f} {s.scrape_cpu_ms:5.0f} {s.samples:8}  "
              f"{', '.join(f'{k}: {v}' for k, v in sorted(s.reasons.items()))}", flush=True)
    own = sum(s.reasons.get("XDP program changed by someone else", 0) for s in sizes)
    print(f"reconciles triggered by the daemon's own XDP changes: {own}")
    print(f"edit -> live p50 over all sizes: {statistics.median(x for s in sizes for x in s.edit_ms):.0f} ms")
    print(busy_line(load_before, started))
    return 0


if __name__ == "__main__":
    exit_with(main)
