"""How fast the control plane is, on this machine, with the real daemon and the real kernel.

1. Edit latency: `bpfunits daemon` runs 10 XDP units (bpf/counter.bpf.o, e00..e09) on one
   interface. 50 edits each change the chain: a drop-in `e00.d/50-bench.conf`, written to a temp
   file and renamed into place, alternately moves e00 last (`After=e09`) and back first. Each
   latency runs from the rename to the moment the hook runs a program whose manifest lists the new
   order (polled every ~2 ms from this process). XDP with the default debounce (0.05 s), with
   `--debounce 0.2` and with 0; tc-ingress (bpf/examples/counter.bpf.o) with the default. The daemon's
   own reconciles are timed from its log lines. Then, for each hook, the same edits are reconciled
   in this process, without the daemon, with a timer around each stage, to show where the time
   goes.
2. Cold reconcile: N units (0, 50, 100, 200) over 50 veth interfaces, `bpfunits apply` timed from
   start to exit on fresh state (new namespace, new bpffs root), then a second `apply` over the
   same state (nothing to change: every chain is adopted from the kernel). The interfaces
   bpfb00..bpfb49 form 5 groups of 10 (`Interfaces=bpfb0?` ... `bpfb4?`); unit i is on group
   i % 5, on xdp (bpf/counter.bpf.o) when (i // 5) is even, else on tc-ingress
   (bpf/examples/counter.bpf.o). So 100 hooks each run a chain of N/10 units, and a unit is on 10
   interfaces; their veth peers bpfq00..bpfq49, in the same namespace, carry none. (Not every
   unit on every interface: a chain holds at most 64 maps, the kernel's limit per program, so
   ~60 units of one map each.) Then the largest N once more in this process, with a timer around
   each stage (and, with --profile, under cProfile).
3. Idle daemon: started over the N=200 state (its first reconcile adopts everything), then
   /proc/PID/stat (utime+stime) and VmRSS sampled over 60 s. The daemon lists the interfaces
   every 2 s (XDP changes made through bpf_link send no event) and resyncs every 30 s.

4. How the cost grows with the node (hooks: 10 .. 2,000): benchmarks/node_scale.py.

Everything runs in network namespaces and bpffs folders this script creates and removes, even on
failure, Ctrl-C or SIGTERM. Run as root:
  .venv/bin/python benchmarks/control_plane.py [--edits 50] [--idle 60] [--sizes 0,50,100,200] [--profile]
(or `make bench-control-plane`); about 4 minutes.
"""

from __future__ import annotations

import argparse
import compileall
import cProfile
import functools
import io
import json
import os
import pstats
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bpfunits.config import Config, load_config  # noqa: E402
from bpfunits.daemon import DEFAULT_DEBOUNCE  # noqa: E402
from bpfunits.hooks import Hook  # noqa: E402
from bpfunits.state import bpffs  # noqa: E402
from bpfunits.sys import netns  # noqa: E402
from bpfunits.state.bpffs import StateRoot  # noqa: E402
from bpfunits.hooks.observe import Observer, observe  # noqa: E402
from bpfunits.linker import linker  # noqa: E402
from bpfunits.linker.manifest import read_manifest  # noqa: E402
from bpfunits.reconcile import engine, observed, progcache  # noqa: E402
from tests.daemon.notifysocket import NotifySocket  # noqa: E402

XDP_OBJECT = REPO / "bpf" / "counter.bpf.o"
TC_OBJECT = REPO / "bpf" / "examples" / "counter.bpf.o"
INTERFACES = 50
EDIT_UNITS = [f"e{i:02d}" for i in range(10)]
DROP_IN = "50-bench.conf"
POLL_S = 0.002
TIMEOUT_S = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# (where the name is looked up, name, stage): the reconciler's steps, timed in-process.
STAGES = (
    (engine, "load_units", "read unit files"),
    (engine, "order_all", "order"),
    (observed, "interfaces", "observe hooks"),
    (observed, "read_all", "observe hooks"),
    (progcache, "load_unit_program", "load unit programs (libbpf)"),
    (engine, "plan_all", "plan"),
    (engine, "link_chain", "link chain"),
    (linker.LinkedChain, "load", "verify chain (PROG_LOAD)"),
    (engine._Run, "switch", "attach (link update)"),
    (engine._Run, "clean_up", "clean up pins"),
)


def ms(seconds: float) -> float:
    return seconds * 1e3


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: with 50 samples, p99 is the largest but none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def run(*cmd: str, stdin: str | None = None) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True, input=stdin)


# --- the sandbox: one namespace with veth interfaces, one bpffs root, one folder of files -------


@dataclass(frozen=True)
class Sandbox:
    ns: str
    interfaces: tuple[str, ...]  # the ends units attach to; their peers are bpfq<i>
    folder: Path
    root: StateRoot

    @property
    def units(self) -> Path:
        return self.folder / "units"

    @property
    def config_file(self) -> Path:
        return self.folder / "bpfunits.yaml"

    def config(self) -> Config:
        return load_config(self.config_file).override(units_dirs=[self.units])

    def cli(self, command: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "bpfunits", command, "--config", str(self.config_file),
                "--units-dir", str(self.units), "--bpffs-root", str(self.root.path), "--netns", self.ns, *extra]


@contextmanager
def sandbox(interfaces: int) -> Iterator[Sandbox]:
    tag = secrets.token_hex(3)
    ns = f"bpfb-{tag}"
    bpffs.ensure_mounted()
    root = StateRoot(bpffs.BPFFS / f"bpfb-{tag}")
    folder = Path(tempfile.mkdtemp(prefix=f"bpfb-{tag}-"))
    created = False
    try:
        run("ip", "netns", "add", ns)
        created = True
        names = [f"{i:02d}" for i in range(interfaces)]
        lines = [f"link add bpfb{i} type veth peer name bpfq{i}\nlink set bpfb{i} up\nlink set bpfq{i} up"
                 for i in names]
        if lines:
            run("ip", "-n", ns, "-batch", "-", stdin="\n".join(lines) + "\n")
        (folder / "units").mkdir()
        (folder / "bpfunits.yaml").write_text(f"lock_file: {folder / 'lock'}\nstate_file: {folder / 'state.json'}\n"
                                              f"bpffs_root: {root.path}\nmetrics_listen: 127.0.0.1:0\n")
        yield Sandbox(ns, tuple(f"bpfb{i}" for i in names), folder, root)
    finally:
        if created:
            # Deleting the namespace takes its interfaces, and with them every hook we attached.
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        root.remove()
        shutil.rmtree(folder, ignore_errors=True)


def write_atomic(path: Path, text: str) -> float:
    """As configuration management writes: a dot-named temp file renamed into place. Returns
    when (time.monotonic()) the new file landed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    landed = time.monotonic()
    tmp.rename(path)
    return landed


def unit_text(obj: Path, hook: str, interfaces: str, name: str | None = None) -> str:
    program = f"Object={obj}\n" + (f"Name={name}\n" if name else "")
    return f"[Unit]\n[Program]\n{program}[Attach]\nHook={hook}\nInterfaces={interfaces}\n"


# --- the daemon as a real process -----------------------------------------------------------------


class DaemonProcess:
    def __init__(self, box: Sandbox, *extra: str) -> None:
        self.log = box.folder / f"daemon-{secrets.token_hex(2)}.log"
        self.notify = NotifySocket()
        started = time.monotonic()
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                box.cli("daemon", "--log-format", "json", *extra), cwd=REPO,
                env={**os.environ, "NOTIFY_SOCKET": self.notify.address},
                stdout=subprocess.DEVNULL, stderr=log,
            )
        try:
            self.notify.wait_for(lambda line: line == "READY=1", timeout=120)
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.monotonic() - started

    def reconciles(self) -> list[float]:
        """How long each reconcile took (s), from the log lines that open ("reconcile: why") and
        close ("reconcile (why): ...") it; millisecond timestamps."""
        spans, start = [], None
        for line in self.log.read_text().splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            message = record["message"]
            if message.startswith(("reconcile: ", "reconcile (")):
                stamp = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()
                if message.startswith("reconcile: "):
                    start = stamp
                elif start is not None:
                    spans.append(stamp - start)
                    start = None
        return spans

    def scrape_ms(self, times: int) -> tuple[list[float], float, int]:
        """How long each of `times` scrapes of its /metrics took (ms), the daemon's CPU time per
        scrape (ms: what a loaded machine does not inflate), and the samples in the last."""
        address = next(json.loads(line)["metrics_listen"] for line in self.log.read_text().splitlines()
                       if line.startswith("{") and "metrics_listen" in json.loads(line))
        spans, samples = [], 0
        cpu = cpu_seconds(self.proc.pid)
        for _ in range(times):
            started = time.monotonic()
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
                text = response.read().decode()
            spans.append(ms(time.monotonic() - started))
            samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        return spans, ms(cpu_seconds(self.proc.pid) - cpu) / times, samples

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.notify.close()


@contextmanager
def daemon(box: Sandbox, *extra: str) -> Iterator[DaemonProcess]:
    process = DaemonProcess(box, *extra)
    try:
        yield process
    finally:
        process.stop()


# --- 1. edit latency ------------------------------------------------------------------------------


class ChainWatch:
    """The unit order bpfunits' program on one hook runs, read from the kernel; the manifest is
    read only when the program id changes."""

    def __init__(self, box: Sandbox, ifname: str, hook: Hook) -> None:
        self.box, self.hook = box, hook
        self.ifindex = netns.ifindex(ifname, box.ns)
        self._cache: tuple[int, tuple[str, ...]] = (0, ())

    def units(self) -> tuple[str, ...]:
        ours = observe(self.ifindex, self.hook, self.box.root).ours
        if not ours:
            return ()
        prog_id = ours[0].prog_id
        if prog_id != self._cache[0]:
            manifest = read_manifest(prog_id)
            self._cache = (prog_id, tuple(e.unit for e in manifest.components) if manifest else ())
        return self._cache[1]

    def wait_for(self, want: tuple[str, ...], since: float) -> float:
        """Seconds from `since` (time.monotonic()) until the hook runs `want`."""
        with netns.inside(self.box.ns):
            while True:
                running = self.units()
                now = time.monotonic()  # after the look, so a slow look never shortens a latency
                if running == want:
                    return now - since
                if now - since > TIMEOUT_S:
                    raise RuntimeError(f"the hook did not run {want} within {TIMEOUT_S} s (runs {self.units()})")
                time.sleep(POLL_S)


def edit_order(edit: int) -> tuple[tuple[str, ...], str]:
    """After edit number `edit` (0 = the initial files): the chain wanted, and the drop-in text."""
    if edit % 2:
        return (*EDIT_UNITS[1:], EDIT_UNITS[0]), f"[Unit]\nAfter={EDIT_UNITS[-1]}\n"
    return tuple(EDIT_UNITS), f"[Unit]\nBefore={EDIT_UNITS[1]}\n"


def write_edit_units(box: Sandbox, hook: Hook) -> ChainWatch:
    """The 10 units on the sandbox's first interface, on `hook` (xdp or tc-ingress)."""
    for name in EDIT_UNITS:
        text = (unit_text(XDP_OBJECT, hook.value, box.interfaces[0]) if hook is Hook.XDP
                else unit_text(TC_OBJECT, hook.value, box.interfaces[0], name="tc_counter"))
        (box.units / f"{name}.unit").write_text(text)
    write_atomic(box.units / f"{EDIT_UNITS[0]}.d" / DROP_IN, edit_order(0)[1])
    return ChainWatch(box, box.interfaces[0], hook)


def edit(box: Sandbox, number: int) -> tuple[tuple[str, ...], float]:
    """Make edit `number`; the chain it asks for and when the file landed."""
    want, text = edit_order(number)
    return want, write_atomic(box.units / f"{EDIT_UNITS[0]}.d" / DROP_IN, text)


@dataclass
class Latency:
    label: str
    samples_ms: list[float]
    reconciles_ms: list[float]  # the daemon's own reconciles meanwhile

    def row(self) -> str:
        s, r = self.samples_ms, self.reconciles_ms
        return (f"  {self.label:34} p50 {percentile(s, 50):6.1f}  p99 {percentile(s, 99):6.1f}  "
                f"min {min(s):6.1f}  max {max(s):6.1f} ms; {len(r)} reconciles for {len(s)} edits, "
                f"each p50 {percentile(r, 50):.0f} ms")


def daemon_latency(box: Sandbox, watch: ChainWatch, edits: int, label: str, *extra: str) -> Latency:
    with daemon(box, *extra) as d:
        watch.wait_for(edit_order(0)[0], time.monotonic())
        before = len(d.reconciles())
        samples = []
        for number in range(1, edits + 1):
            want, since = edit(box, number)
            samples.append(ms(watch.wait_for(want, since)))
            time.sleep(0.05)  # let the reconcile finish its clean-up before the next edit
        reconciles = [ms(r) for r in d.reconciles()[before:]]
    # Leave the files as they were at the start, for the next run.
    write_atomic(box.units / f"{EDIT_UNITS[0]}.d" / DROP_IN, edit_order(0)[1])
    return Latency(label, samples, reconciles)


class Stopwatch:
    """Wraps the reconciler's steps (STAGES) with timers while active; totals in seconds."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)

    def _timed(self, fn: Callable, stage: str) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[stage] += time.perf_counter() - start

        return wrapper

    @contextmanager
    def active(self) -> Iterator[None]:
        originals = [(owner, name, getattr(owner, name)) for owner, name, _ in STAGES]
        try:
            for (owner, name, stage), (_, _, fn) in zip(STAGES, originals, strict=True):
                setattr(owner, name, self._timed(fn, stage))
            yield
        finally:
            for owner, name, fn in originals:
                setattr(owner, name, fn)


def reconcile_here(box: Sandbox) -> engine.Result:
    with netns.inside(box.ns):
        result = engine.reconcile(box.config(), apply=True)
    if result.failed:
        raise RuntimeError(f"reconcile failed: {[h.errors for h in result.hooks if h.errors][:3]}")
    return result


def in_process_breakdown(box: Sandbox, watch: ChainWatch, edits: int) -> tuple[list[float], dict[str, float]]:
    """Each edit reconciled in this process: the reconcile's time, and the mean per stage (s)."""
    reconcile_here(box)
    stopwatch = Stopwatch()
    totals = []
    with stopwatch.active():
        for number in range(1, edits + 1):
            want, _ = edit(box, number)
            start = time.perf_counter()
            reconcile_here(box)
            totals.append(time.perf_counter() - start)
            with netns.inside(box.ns):
                got = watch.units()
            if got != want:
                raise RuntimeError(f"in-process edit {number}: the hook runs {got}, not {want}")
    stages = {stage: total / edits for stage, total in stopwatch.totals.items()}
    return [ms(t) for t in totals], stages


# --- 2. cold reconcile ----------------------------------------------------------------------------


GROUPS = 5  # of 10 interfaces each: bpfb0? .. bpfb4?


def write_cold_units(box: Sandbox, n: int) -> None:
    for i in range(n):
        group = f"bpfb{i % GROUPS}?"
        text = (unit_text(XDP_OBJECT, "xdp", group) if (i // GROUPS) % 2 == 0
                else unit_text(TC_OBJECT, "tc-ingress", group, name="tc_counter"))
        (box.units / f"u{i:03d}.unit").write_text(text)


def timed_apply(box: Sandbox) -> float:
    start = time.monotonic()
    done = subprocess.run(box.cli("apply"), capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(f"bpfunits apply exited {done.returncode}: {(done.stderr or done.stdout)[:2000]}")
    return elapsed


def count_chains(box: Sandbox) -> int:
    with netns.inside(box.ns):
        live = observed.interfaces()
        states = observed.read_all(live, Observer(box.root, whole_namespace=True))
        return sum(1 for s in states.values() if s.ours is not None)


def in_process_cold(n: int, profile: bool) -> tuple[float, dict[str, float]]:
    """A cold reconcile of n units in this process, on fresh state: its time and each stage's (s).
    With `profile`, under cProfile (which slows it), printing the functions that take longest."""
    with sandbox(INTERFACES) as box:
        write_cold_units(box, n)
        stopwatch, profiler = Stopwatch(), cProfile.Profile()
        with stopwatch.active():
            start = time.perf_counter()
            if profile:
                profiler.enable()
            try:
                reconcile_here(box)
            finally:
                profiler.disable()
            total = time.perf_counter() - start
    if profile:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(12)
        stats.sort_stats("cumulative").print_stats("bpfunits", 20)
        print("  cProfile (own time, then cumulative in bpfunits):")
        print("\n".join("    " + line.replace(str(REPO) + "/", "") for line in out.getvalue().splitlines()
                        if line.strip() and not line.lstrip().startswith(("Ordered", "List reduced"))))
    return total, dict(stopwatch.totals)


def print_stages(total_s: float, stages: dict[str, float]) -> None:
    for stage, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"    {stage:30} {ms(seconds):8.2f} ms")
    print(f"    {'other (lock, results, ...)':30} {ms(total_s - sum(stages.values())):8.2f} ms", flush=True)


@dataclass
class Cold:
    units: int
    hooks: int
    cold_s: float
    adopt_s: float


# --- 3. idle daemon -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


WINDOW_S = 5.0  # CPU is read in windows this long; /proc counts in ticks of 1/CLK_TCK s


@dataclass
class Idle:
    ready_s: float
    cpu_percent: float  # over the whole time
    quiet_cpu_percent: float  # the median window: the interface polls, without the resyncs
    rss_mean_mb: float
    rss_max_mb: float
    reconciles_ms: list[float]  # the resyncs meanwhile
    seconds: float


def idle_daemon(box: Sandbox, seconds: float) -> Idle:
    with daemon(box) as d:
        pid = d.proc.pid
        before = len(d.reconciles())
        times, cpus, rss = [time.monotonic()], [cpu_seconds(pid)], []
        while (elapsed := times[-1] - times[0]) < seconds:
            rss.append(rss_mb(pid))
            time.sleep(min(1.0, seconds - elapsed))
            now = time.monotonic()
            if now - times[-1] >= WINDOW_S or now - times[0] >= seconds:
                times.append(now)
                cpus.append(cpu_seconds(pid))
        rss.append(rss_mb(pid))
        windows = [100 * (cpus[i + 1] - cpus[i]) / (times[i + 1] - times[i]) for i in range(len(times) - 1)]
        return Idle(d.ready_s, 100 * (cpus[-1] - cpus[0]) / (times[-1] - times[0]), statistics.median(windows),
                    statistics.mean(rss), max(rss), [ms(r) for r in d.reconciles()[before:]],
                    times[-1] - times[0])


# --- the run --------------------------------------------------------------------------------------


def edit_section(edits: int) -> list[Latency]:
    print(f"1. edit latency: 10 units on one interface, {edits} edits", flush=True)
    latencies = []
    with sandbox(1) as box:
        # None: the daemon's default.
        for hook, debounces in ((Hook.XDP, (None, "0.2", "0")), (Hook.TC_INGRESS, (None,))):
            watch = write_edit_units(box, hook)
            for debounce in debounces:
                if debounce is None:
                    label, extra = f"{hook.value}, default debounce {DEFAULT_DEBOUNCE}", ()
                else:
                    label, extra = f"{hook.value}, --debounce {debounce}", ("--debounce", debounce)
                latencies.append(daemon_latency(box, watch, edits, label, *extra))
                print(latencies[-1].row(), flush=True)
            here, stages = in_process_breakdown(box, watch, edits)
            print(f"  {hook.value}, in this process, reconcile per edit: p50 {percentile(here, 50):.1f}  "
                  f"p99 {percentile(here, 99):.1f} ms; mean per stage:")
            print_stages(statistics.mean(here) / 1e3, stages)
    return latencies


def cold_section(sizes: list[int], idle_s: float, profile: bool) -> tuple[list[Cold], Idle | None]:
    print(f"2. cold reconcile over {INTERFACES} interfaces (each unit on 10 of them; xdp and tc-ingress)",
          flush=True)
    colds: list[Cold] = []
    idle: Idle | None = None
    for n in sizes:
        with sandbox(INTERFACES) as box:
            write_cold_units(box, n)
            cold_s = timed_apply(box)
            hooks = count_chains(box)
            adopt_s = timed_apply(box)
            colds.append(Cold(n, hooks, cold_s, adopt_s))
            print(f"  {n:4} units  {hooks:4} hooks  cold apply {cold_s:6.2f} s  second apply {adopt_s:6.2f} s",
                  flush=True)
            if n == max(sizes) and idle_s > 0:
                idle = idle_daemon(box, idle_s)
    total_s, stages = in_process_cold(max(sizes), profile=False)
    print(f"  in this process, {max(sizes)} units cold: {total_s:.2f} s; per stage:")
    print_stages(total_s, stages)
    if profile:
        in_process_cold(max(sizes), profile=True)
    if idle:
        resyncs = " ".join(f"{r:.0f} ms" for r in idle.reconciles_ms) or "-"
        print(f"3. idle daemon over the {max(sizes)}-unit state, {idle.seconds:.0f} s\n"
              f"  ready after {idle.ready_s:.2f} s; CPU {idle.cpu_percent:.2f} % (median {WINDOW_S:.0f} s window "
              f"{idle.quiet_cpu_percent:.2f} %)  RSS mean {idle.rss_mean_mb:.1f} MB max {idle.rss_max_mb:.1f} MB  "
              f"({len(idle.reconciles_ms)} resyncs: {resyncs})", flush=True)
    return colds, idle


def print_summary(latencies: list[Latency], colds: list[Cold], idle: Idle | None) -> None:
    rows = [(f"edit -> live, {lat.label}", "p50 <= 150 ms",
             f"p50 {percentile(lat.samples_ms, 50):.0f} ms, p99 {percentile(lat.samples_ms, 99):.0f} ms, "
             f"max {max(lat.samples_ms):.0f} ms") for lat in latencies]
    rows += [(f"cold apply, {c.units} units / {c.hooks} hooks", "<= 10 s" if c.units == 200 else "",
              f"{c.cold_s:.2f} s (second apply {c.adopt_s:.2f} s)") for c in colds]
    if idle:
        rows.append((f"idle daemon, {idle.seconds:.0f} s", "", f"CPU {idle.cpu_percent:.2f} % ("
                     f"{idle.quiet_cpu_percent:.2f} % between resyncs), RSS {idle.rss_max_mb:.1f} MB (max)"))
    print(f"\n{'summary':52} {'target':14} measured")
    for what, target, measured in rows:
        print(f"  {what:50} {target:14} {measured}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--edits", type=int, default=50)
    p.add_argument("--idle", type=float, default=60.0, help="seconds of idle daemon sampling")
    p.add_argument("--sizes", default="0,50,100,200", help="unit counts for the cold reconcile")
    p.add_argument("--profile", action="store_true", help="also profile the largest cold reconcile (cProfile)")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    # SIGTERM unwinds like Ctrl-C, so every finally (daemon, namespace, pins) runs; SIGINT too
    # when started in the background by a shell, which ignores it there.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    byte_compiled()
    # Other work on the machine's 2 cores shows in every figure here: say how busy it was.
    load_before = os.getloadavg()[0]
    latencies = edit_section(args.edits)
    colds, idle = cold_section([int(n) for n in args.sizes.split(",")], args.idle, args.profile)
    print_summary(latencies, colds, idle)
    print(busy_line(load_before, started))
    return 0


def byte_compiled() -> None:
    """Byte-compile bpfunits, as installing it does: a command timed here must not include
    compiling sources whose .pyc is missing or stale (PYTHONDONTWRITEBYTECODE keeps it so)."""
    compileall.compile_dir(REPO / "bpfunits", quiet=1)


def busy_line(load_before: float, started: float) -> str:
    """How busy the machine was around a run (its figures depend on it), and how long it took."""
    return (f"load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f} (1 min; 2 cores); "
            f"total {time.monotonic() - started:.0f} s")


def exit_with(main: Callable[[], int]) -> None:
    """Run a benchmark's main; Ctrl-C and SIGTERM unwind it, so everything it made is removed."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything it created is removed", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    exit_with(main)
