"""Declared map metrics ([Metrics] Map=NAME KEY): a value of a unit's pinned map, read at scrape
time, typed from the map's BTF, summed over CPUs for per-CPU maps."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bpfunits.btf.types import parse_btf
from bpfunits.errors import BpfUnitsError
from bpfunits.state.bpffs import StateRoot, folder_name
from bpfunits.sys import bpf, libbpf
from bpfunits.units.model import MapMetric, Unit

PER_CPU = frozenset({bpf.MapType.PERCPU_ARRAY, bpf.MapType.PERCPU_HASH, bpf.MapType.LRU_PERCPU_HASH})
_INTEGER_SIZES = (1, 2, 4, 8)


def metric_name(map_name: str) -> str:
    return "bpfunits_map_" + re.sub(r"[^A-Za-z0-9_]", "_", map_name)


def read_value(root: StateRoot, unit: str, metric: MapMetric) -> tuple[int, str] | None:
    """The value at the metric's key of the unit's pinned map, and the kind of metric it is
    (counter or gauge); None when the map is not pinned, has no such key, or holds no integer."""
    fd = bpf.obj_get(str(root.unit_path(unit) / folder_name(metric.map)))
    try:
        info = bpf.map_info(fd)
        if info.btf_id:
            blob = libbpf.kernel_btf(info.btf_id)
            typed = parse_btf(blob).integer(info.btf_value_type_id) if blob is not None else None
        else:
            typed = (info.value_size, False) if info.value_size in _INTEGER_SIZES else None
        if typed is None or metric.key >= 1 << (8 * info.key_size):
            return None
        size, signed = typed
        key = metric.key.to_bytes(info.key_size, "little")
        values = (bpf.map_lookup_percpu(fd, key, info.value_size) if info.type in PER_CPU
                  else [v] if (v := bpf.map_lookup(fd, key, info.value_size)) is not None else None)
        if values is None:
            return None
        total = sum(int.from_bytes(v[:size], "little", signed=signed) for v in values)
        return total, metric.kind or ("gauge" if signed else "counter")
    finally:
        os.close(fd)


class MapMetrics(Collector):
    """update() in the event loop's thread after each reconcile, collect() in the listener's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._root: StateRoot | None = None
        self._declared: tuple[tuple[str, MapMetric], ...] = ()

    def update(self, root: StateRoot, units: Iterable[Unit]) -> None:
        declared = tuple((u.name, m) for u in units for m in u.metrics)
        with self._lock:
            self._root, self._declared = root, declared

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            root, declared = self._root, self._declared
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for unit, metric in declared:
            try:
                read = read_value(root, unit, metric) if root is not None else None
            except (BpfUnitsError, OSError):
                read = None  # not pinned (the unit runs nowhere yet): no sample
            if read is None:
                continue
            value, kind = read
            name = metric_name(metric.map)
            family = families.get(name)
            if family is None:
                make = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                family = families[name] = make(name, f"Value of map {metric.map} at the declared keys, by unit",
                                               labels=["unit", "key"])
            if family.type == kind:  # one name, one kind: the first unit's declaration wins
                family.add_metric([unit, str(metric.key)], value)
        yield from families.values()
