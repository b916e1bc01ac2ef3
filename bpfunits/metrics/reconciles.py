"""The daemon's reconciles as metrics: how long, why, how they ended, and the last good one."""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from bpfunits import __version__
from bpfunits.reconcile.engine import Result
from bpfunits.sys import libbpf

# From an event's few hooks (milliseconds) to a start on thousands (minutes).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ReconcileMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._duration = Histogram("bpfunits_reconcile_duration_seconds", "Time one reconcile took, by trigger",
                                   ["trigger"], buckets=BUCKETS, registry=registry)
        self._total = Counter("bpfunits_reconciles", "Reconciles by trigger and result: ok, failed (some hooks "
                              "or units failed), error (the reconcile itself raised)", ["trigger", "result"],
                              registry=registry)
        self._last = Gauge("bpfunits_last_successful_reconcile_timestamp_seconds",
                           "When the last reconcile that ran to its end finished (Unix time)", registry=registry)
        Info("bpfunits_build", "bpfunits' version, the kernel's release, libbpf's version",
             registry=registry).info({"version": __version__, "kernel": os.uname().release,
                                      "libbpf": libbpf.version()})

    def record(self, trigger: str, seconds: float, result: Result | None) -> None:
        """One reconcile; `result` None when it raised."""
        self._duration.labels(trigger).observe(seconds)
        outcome = "error" if result is None else "failed" if result.failed else "ok"
        self._total.labels(trigger, outcome).inc()
        if result is not None:
            self._last.set(time.time())
