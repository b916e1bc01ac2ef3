"""The node as the daemon exports it: every hook's state and chain, kept from the reconciles'
results, and each unit's packets and verdicts, read from the chains' counters at scrape time
(no thread polls the kernel)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bpfunits.hooks import Hook
from bpfunits.hooks.observe import Attached
from bpfunits.linker.counters import OpenCounters, open_counters
from bpfunits.order.graph import HookKey
from bpfunits.plan.model import Action
from bpfunits.reconcile.engine import HookResult, Outcome, Result
from bpfunits.reconcile.memory import Memory
from bpfunits.sys.bpf import BpfError

HOOK_STATES = ("unchanged", "blocked", "failed", "foreign")
KERNEL_OPERATIONS = {Action.CREATE: "attach", Action.REPLACE: "replace", Action.REMOVE: "detach"}
OTHER_VERDICT = "other"  # a code the hook does not define
_VERDICT_NAMES = {hook: {code: name for name, code in hook.verdicts.items()} for hook in Hook}


@dataclass(frozen=True)
class HookView:
    state: str  # one of HOOK_STATES
    chain: Attached | None  # bpfunits' program on the hook
    units: tuple[str, ...]  # its units, in order


class NodeMetrics(Collector):
    """A prometheus_client collector. update() runs in the event loop's thread after each
    reconcile, collect() in the listener's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: dict[HookKey, HookView] = {}
        self._unit_errors: dict[str, str] = {}
        self._operations: Counter[str] = Counter()
        self._uncarried = 0
        # Per chain program id, its counters held open (None: it has none). A hook's view moves
        # to a new chain only after the swap carried the old one's counts over, so reading the old
        # one until then never shows a count going back.
        self._counters: dict[int, OpenCounters | None] = {}

    def update(self, result: Result, memory: Memory, known_units: Iterable[str]) -> None:
        """Take in a reconcile's result (maybe only its dirty hooks); `memory`: the reconciler's
        view of every hook; `known_units`: the valid units' names."""
        with self._lock:
            for hook in result.hooks:
                self._hooks[hook.key] = _view(hook)
                kind = KERNEL_OPERATIONS.get(hook.plan.action)
                if kind is not None and hook.outcome is Outcome.APPLIED:
                    self._operations[kind] += 1
                self._uncarried += hook.uncarried is not None
            present = memory.hooks.keys() | memory.retries.keys()
            for key in [k for k in self._hooks if k not in present]:
                del self._hooks[key]
            # A unit's error stays until a reconcile looks at it again, or its unit is gone (the
            # errors of units with broken files come with every result).
            looked = {u for h in result.hooks for u in h.ordered}
            known = set(known_units)
            self._unit_errors = {u: e for u, e in self._unit_errors.items() if u in known and u not in looked}
            self._unit_errors.update(result.unit_errors)
            running = {v.chain.prog_id for v in self._hooks.values() if v.chain is not None}
            for prog_id in [p for p in self._counters if p not in running]:
                opened = self._counters.pop(prog_id)
                if opened is not None:
                    opened.close()

    def collect(self) -> Iterator[Metric]:
        packets = CounterMetricFamily("bpfunits_unit_packets", "Packets that entered the unit on the hook",
                                      labels=["interface", "hook", "unit"])
        verdicts = CounterMetricFamily("bpfunits_unit_verdicts", "Packets for which the unit returned the verdict",
                                       labels=["interface", "hook", "unit", "verdict"])
        info = InfoMetricFamily("bpfunits_chain", "bpfunits' linked program on the hook",
                                labels=["interface", "hook", "prog_id", "tag", "backend", "mode"])
        sizes = GaugeMetricFamily("bpfunits_chain_units", "Units in the chain running on the hook",
                                  labels=["interface", "hook"])
        states = GaugeMetricFamily("bpfunits_hooks", "Hooks by state: unchanged (runs its chain as wanted), "
                                   "blocked, failed, foreign (runs only others' programs)", labels=["state"])
        errors = GaugeMetricFamily("bpfunits_unit_errors", "Units whose files or programs have an error",
                                   labels=["unit"])
        operations = CounterMetricFamily("bpfunits_kernel_operations", "Attaches, atomic replaces and detaches",
                                         labels=["kind"])
        uncarried = CounterMetricFamily("bpfunits_counter_carry_failures", "Swaps after which the units' counts "
                                        "could not be carried over to the new chain (logged as warnings)")
        with self._lock:
            count = Counter(v.state for v in self._hooks.values())
            for state in HOOK_STATES:
                states.add_metric([state], count[state])
            for unit in sorted(self._unit_errors):
                errors.add_metric([unit], 1)
            for kind in KERNEL_OPERATIONS.values():
                operations.add_metric([kind], self._operations[kind])
            uncarried.add_metric([], self._uncarried)
            for key, view in self._hooks.items():
                chain = view.chain
                if chain is None:
                    continue
                where = [key.interface, key.hook.value]
                info.add_metric(where + [str(chain.prog_id), chain.tag, chain.backend.value, chain.mode or ""], {})
                sizes.add_metric(where, len(view.units))
                self._add_counts(key, chain.prog_id, packets, verdicts)
        yield from (packets, verdicts, info, sizes, states, errors, operations, uncarried)

    def _add_counts(self, key: HookKey, prog_id: int, packets: CounterMetricFamily,
                    verdicts: CounterMetricFamily) -> None:
        try:
            if prog_id not in self._counters:
                self._counters[prog_id] = open_counters(prog_id)
            opened = self._counters[prog_id]
            counts = opened.read() if opened is not None else []
        except BpfError:
            return  # the program went away since the last reconcile: the next one tells
        names = _VERDICT_NAMES[key.hook]
        interface, hook = key.interface, key.hook.value
        for c in counts:
            packets.add_metric([interface, hook, c.name], c.entered)
            # Only the verdicts a unit returned: most units return one or two of the hook's five
            # (XDP) or ten (tc), and every sample costs scrape time at thousands of hooks. A
            # verdict's series appears with its first packet and never goes back.
            for code, n in c.verdicts.items():
                if n:
                    verdicts.add_metric([interface, hook, c.name, names[code]], n)
            if c.unknown:
                verdicts.add_metric([interface, hook, c.name, OTHER_VERDICT], c.unknown)

    def close(self) -> None:
        with self._lock:
            for opened in self._counters.values():
                if opened is not None:
                    opened.close()
            self._counters.clear()


def _view(hook: HookResult) -> HookView:
    chain = hook.attached or (hook.running if hook.prog_id is not None else None)
    if hook.outcome is Outcome.BLOCKED:
        state = "blocked"
    elif hook.outcome is Outcome.FAILED or hook.errors:
        state = "failed"
    elif chain is None and hook.foreign:
        state = "foreign"
    else:
        state = "unchanged"
    desired = hook.plan.desired if hook.outcome in (Outcome.APPLIED, Outcome.UNCHANGED) else hook.plan.observed
    return HookView(state, chain, desired.units if desired is not None and chain is not None else ())
