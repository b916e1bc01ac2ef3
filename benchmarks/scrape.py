"""What one scrape of the daemon's metrics costs at N hooks (issue 16: <= 100 ms at 2,000), with
the collector of a baseline commit and this checkout's side by side, in one process, over the same
kernel state, their scrapes interleaved (the machine's load hits both alike).

The state: N/2 interfaces (names only: nothing is attached), each with an XDP and a tc-ingress
chain of one counter unit, linked and loaded as the reconciler does (counters and manifest), each
run once with BPF_PROG_TEST_RUN so that its unit has a verdict to export; the collector learns
them from a reconcile's result, as in the daemon. A scrape is prometheus_client's generate_latest
over a registry with the collector alone (what the listener serves at /metrics; the other families
cost the same in both); the first scrape, which opens every chain's counters, is not counted.
Per collector: wall and CPU time per scrape (p50, max), and how much of it is collect() (reading
the counters, building the samples) rather than prometheus_client's formatting. The two outputs
must be identical, byte for byte.

Run as root:  .venv/bin/python benchmarks/scrape.py [--hooks 10,1000,2000] [--scrapes 20] [--baseline REV]
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

from bpfunits.hooks import Hook  # noqa: E402
from bpfunits.hooks.observe import Attached, Backend  # noqa: E402
from bpfunits.linker.component import component_of  # noqa: E402
from bpfunits.linker.linker import link_chain  # noqa: E402
from bpfunits.load.load import load_object_program  # noqa: E402
from bpfunits.metrics.node import NodeMetrics  # noqa: E402
from bpfunits.order.graph import HookKey  # noqa: E402
from bpfunits.plan.model import Action, ChainMember, ChainState, HookPlan  # noqa: E402
from bpfunits.reconcile.desired import build_id  # noqa: E402
from bpfunits.reconcile.engine import HookResult, Outcome, Result  # noqa: E402
from bpfunits.reconcile.memory import Left, Memory  # noqa: E402
from bpfunits.state.bpffs import BPFFS, ensure_mounted, remove_tree  # noqa: E402
from bpfunits.sys import bpf  # noqa: E402

# The collector before the scrape work (the 176 ms at 2,000 hooks were measured with it,
# less the carry-failure counter added just before).
BASELINE = "52af22e"
UNITS = {Hook.XDP: ("gx", REPO / "bpf" / "counter.bpf.o", None, Backend.XDP_LINK),
         Hook.TC_INGRESS: ("gt", REPO / "bpf" / "examples" / "counter.bpf.o", "tc_counter", Backend.TCX)}


def baseline_collector(rev: str) -> type[Collector]:
    """NodeMetrics as it was at `rev`, with that commit's counter reader and bpf() wrappers."""
    # Each module of that commit, and how its imports of the others are redirected to theirs.
    sources = {
        "bpf": ("bpfunits/sys/bpf.py", {}),
        "counters": ("bpfunits/linker/counters.py", {"from bpfunits.sys import bpf": "import baseline_bpf as bpf"}),
        "node": ("bpfunits/metrics/node.py", {"from bpfunits.linker.counters import": "from baseline_counters import",
                                              "from bpfunits.sys.bpf import": "from baseline_bpf import"}),
    }
    modules = {}
    for name, (path, imports) in sources.items():
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], check=True, capture_output=True,
                              text=True).stdout
        for ours, theirs in imports.items():
            text = text.replace(ours, theirs)
        module = types.ModuleType(f"baseline_{name}")
        sys.modules[module.__name__] = module  # dataclasses look their module up
        exec(compile(text, f"{rev}:{path}", "exec"), module.__dict__)
        modules[name] = module
    return modules["node"].NodeMetrics


@contextmanager
def chains(hooks: int) -> Iterator[tuple[Result, Memory]]:
    """`hooks` chains loaded (held open until the end), and the reconcile's result and memory
    that name them."""
    ensure_mounted(BPFFS)
    pins = BPFFS / f"bu-scrape-{secrets.token_hex(4)}"
    with ExitStack() as stack:
        stack.callback(remove_tree, pins)
        result = Result()
        memory = Memory()
        for hook, (unit, obj, name, backend) in UNITS.items():
            loaded = load_object_program(obj, hook, pins / unit, name=name)
            stack.callback(loaded.close)
            proceed = frozenset(hook.verdicts[v] for v in hook.default_proceed_on)
            component = component_of(unit, loaded, proceed)
            for i in range(hooks // 2 + hooks % 2 * (hook is Hook.XDP)):
                with link_chain(hook, [component], counters=True, manifest=build_id(True)) as linked:
                    fd = linked.load()
                stack.callback(os.close, fd)
                bpf.prog_test_run(fd, bytes(64))
                info = bpf.prog_info(fd)
                key = HookKey(f"bpfb{i:04d}", hook)
                member = ChainMember(unit, "0" * 64, loaded.tag, tuple(sorted(proceed)))
                state = ChainState((member,), build_id(True))
                attached = Attached(info.id, info.name, info.tag, None, backend, None, ours=True)
                plan = HookPlan(key, Action.UNCHANGED, state, state)
                result.hooks.append(HookResult(plan, Outcome.UNCHANGED, prog_id=info.id, running=attached,
                                               ordered=(unit,)))
                memory.hooks[key] = Left(None, frozenset({info.id}), (unit,))
        yield result, memory


def timed(scrape: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    scrape()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(hooks: int, scrapes: int, collectors: dict[str, type[Collector]]) -> None:
    with chains(hooks) as (result, memory):
        registries, made = {}, []
        for label, make in collectors.items():
            collector = make()
            made.append(collector)
            collector.update(result, memory, ())  # type: ignore[attr-defined]
            registry = CollectorRegistry(auto_describe=False)
            registry.register(collector)
            registries[label] = registry
        try:
            outputs = {label: generate_latest(r) for label, r in registries.items()}  # opens the counters
            if len(set(outputs.values())) != 1:
                raise SystemExit(f"the collectors' outputs differ at {hooks} hooks")
            samples = sum(1 for line in next(iter(outputs.values())).splitlines() if not line.startswith(b"#"))
            runs: dict[str, dict[str, list[float]]] = {label: {"wall": [], "cpu": [], "collect": []}
                                                       for label in registries}
            for _ in range(scrapes):
                for label, registry in registries.items():
                    wall, cpu = timed(lambda r=registry: generate_latest(r))
                    runs[label]["wall"].append(wall)
                    runs[label]["cpu"].append(cpu)
                    runs[label]["collect"].append(timed(lambda r=registry: list(r.collect()))[0])
        finally:
            for collector in made:
                collector.close()  # type: ignore[attr-defined]
    load = os.getloadavg()[0]
    base = statistics.median(runs[next(iter(runs))]["wall"])
    for label, run in runs.items():
        p50 = statistics.median(run["wall"])
        print(f"{hooks:>6} {samples:>8} {label:>10} {1000 * p50:8.1f} {1000 * max(run['wall']):8.1f} "
              f"{1000 * statistics.median(run['cpu']):8.1f} {1000 * statistics.median(run['collect']):9.1f} "
              f"{p50 / base:7.2f} {load:6.1f}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hooks", default="10,1000,2000")
    p.add_argument("--scrapes", type=int, default=20)
    p.add_argument("--baseline", default=BASELINE, help="the commit whose collector is the 'before'")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # two fds per chain and collector
    collectors = {args.baseline: baseline_collector(args.baseline), "this": NodeMetrics}
    print(f"{'hooks':>6} {'samples':>8} {'collector':>10} {'p50 ms':>8} {'max ms':>8} {'CPU ms':>8} "
          f"{'collect ms':>9} {'p50/base':>7} {'load1':>6}")
    for hooks in (int(n) for n in args.hooks.split(",")):
        measure(hooks, args.scrapes, collectors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
