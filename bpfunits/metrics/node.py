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
from prometheus_client.samples import Sample

from bpfunits.hooks import Hook
from bpfunits.hooks.observe import Attached
from bpfunits.linker.counters import OpenCounters, open_counters, verdict_range
from bpfunits.order.graph import HookKey
from bpfunits.plan.model import Action
from bpfunits.reconcile.engine import HookResult, Outcome, Result
from bpfunits.reconcile.memory import Memory
from bpfunits.sys.bpf import BpfError

HOOK_STATES = ("unchanged", "blocked", "failed", "foreign")
KERNEL_OPERATIONS = {Action.CREATE: "attach", Action.REPLACE: "replace", Action.REMOVE: "detach"}
OTHER_VERDICT = "other"  # a code the hook does not define
_VERDICT_NAMES = {hook: {code: name for name, code in hook.verdicts.items()} for hook in Hook}
PACKETS = "bpfunits_unit_packets"
VERDICTS = "bpfunits_unit_verdicts"
CHAIN_INFO = "bpfunits_chain"
CHAIN_UNITS = "bpfunits_chain_units"


@dataclass(frozen=True)
class HookView:
    state: str  # one of HOOK_STATES
    chain: Attached | None  # bpfunits' program on the hook
    units: tuple[str, ...]  # its units, in order


class _Exported:
    """One hook's chain as every scrape exports it, made when the hook's view changes: its
    samples that do not change, and its units' label sets (thousands of hooks, a few samples
    each: a scrape builds its samples from these, not label by label)."""

    def __init__(self, key: HookKey, chain: Attached, units: tuple[str, ...]) -> None:
        self.prog_id = chain.prog_id
        self._where = {"interface": key.interface, "hook": key.hook.value}
        self.info = Sample(CHAIN_INFO + "_info", {**self._where, "prog_id": str(chain.prog_id), "tag": chain.tag,
                                                  "backend": chain.backend.value, "mode": chain.mode or ""}, 1)
        self.size = Sample(CHAIN_UNITS, self._where, len(units))
        low, high = verdict_range(key.hook)
        # A row of counts (see OpenCounters.rows) holds codes low to high, then any other code.
        self._verdicts = [_VERDICT_NAMES[key.hook][code] for code in range(low, high + 1)] + [OTHER_VERDICT]
        self._units: dict[str, tuple[dict[str, str], list[dict[str, str] | None]]] = {}
        for unit in units:
            self.unit(unit)

    def unit(self, name: str) -> tuple[dict[str, str], list[dict[str, str] | None]]:
        """A unit's labels for its packets, and for its verdicts per row of its counts (None
        until verdict() makes them: most units return one or two of the hook's verdicts)."""
        found = self._units.get(name)
        if found is None:
            found = self._units[name] = ({**self._where, "unit": name}, [None] * len(self._verdicts))
        return found

    def verdict(self, name: str, row: int) -> dict[str, str]:
        """The labels of unit `name`'s verdict in `row` of its counts."""
        packets, by_row = self.unit(name)
        labels = by_row[row] = {**packets, "verdict": self._verdicts[row]}
        return labels


class NodeMetrics(Collector):
    """A prometheus_client collector. update() runs in the event loop's thread after each
    reconcile, collect() in the listener's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Per hook, its view and, when it runs a chain of ours, what scrapes export of it.
        self._hooks: dict[HookKey, tuple[HookView, _Exported | None]] = {}
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
                view = _view(hook)
                held = self._hooks.get(hook.key)
                if held is None or held[0] != view:
                    self._hooks[hook.key] = (view, _Exported(hook.key, view.chain, view.units) if view.chain else None)
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
            running = {e.prog_id for _, e in self._hooks.values() if e is not None}
            for prog_id in [p for p in self._counters if p not in running]:
                opened = self._counters.pop(prog_id)
                if opened is not None:
                    opened.close()

    def collect(self) -> Iterator[Metric]:
        packets = CounterMetricFamily(PACKETS, "Packets that entered the unit on the hook",
                                      labels=["interface", "hook", "unit"])
        verdicts = CounterMetricFamily(VERDICTS, "Packets for which the unit returned the verdict",
                                       labels=["interface", "hook", "unit", "verdict"])
        info = InfoMetricFamily(CHAIN_INFO, "bpfunits' linked program on the hook",
                                labels=["interface", "hook", "prog_id", "tag", "backend", "mode"])
        sizes = GaugeMetricFamily(CHAIN_UNITS, "Units in the chain running on the hook",
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
            count = Counter(v.state for v, _ in self._hooks.values())
            for state in HOOK_STATES:
                states.add_metric([state], count[state])
            for unit in sorted(self._unit_errors):
                errors.add_metric([unit], 1)
            for kind in KERNEL_OPERATIONS.values():
                operations.add_metric([kind], self._operations[kind])
            uncarried.add_metric([], self._uncarried)
            for _, exported in self._hooks.values():
                if exported is None:
                    continue
                info.samples.append(exported.info)
                sizes.samples.append(exported.size)
                self._add_counts(exported, packets.samples, verdicts.samples)
        yield from (packets, verdicts, info, sizes, states, errors, operations, uncarried)

    def _add_counts(self, exported: _Exported, packets: list[Sample], verdicts: list[Sample]) -> None:
        prog_id = exported.prog_id
        try:
            if prog_id not in self._counters:
                self._counters[prog_id] = open_counters(prog_id)
            opened = self._counters[prog_id]
            rows = opened.rows() if opened is not None else []
        except BpfError:
            return  # the program went away since the last reconcile: the next one tells
        packets_total, verdicts_total = PACKETS + "_total", VERDICTS + "_total"
        for name, row in rows:
            labels, by_row = exported.unit(name)
            packets.append(Sample(packets_total, labels, sum(row)))
            # Only the verdicts a unit returned: most units return one or two of the hook's five
            # (XDP) or ten (tc), and every sample costs scrape time at thousands of hooks. A
            # verdict's series appears with its first packet and never goes back.
            for r, n in enumerate(row):
                if n:
                    verdicts.append(Sample(verdicts_total, by_row[r] or exported.verdict(name, r), n))

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
