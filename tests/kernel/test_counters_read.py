"""Reading a chain's counter map: every CPU's copy summed, the padding between rows ignored, a
derived count taken from the next component, the carried counts added."""

from __future__ import annotations

import struct

import pytest

from bpfunits.hooks import Hook
from bpfunits.linker.counters import _KEY, ChainCounters, ComponentCounts, read_counts, write_base
from bpfunits.sys import bpf

pytestmark = pytest.mark.kernel


def test_counts_are_summed_over_cpus_derived_and_carried():
    names = ["a", "b", "c"]
    # a: only pass goes on, and b runs after it: a's pass count is derived (what entered b).
    counters = ChainCounters(Hook.XDP, names, [frozenset({2}), frozenset({2, 3}), frozenset({2})], 3)
    try:
        layout = counters.layout
        cpus = bpf.possible_cpus()
        words = layout.value_size // 8

        def count(i: int, r: int) -> int:  # what CPU 0 counted for component i, row r
            return 10 * i + r + 1

        values = []
        for cpu in range(cpus):
            value = [7_000_000 + cpu] * words  # padding: never read
            for i in range(len(names)):
                for r in range(layout.rows):
                    value[layout.offset(i, r) // 8] = (cpu + 1) * count(i, r)
            values.append(struct.pack(f"<{words}Q", *value))
        bpf.map_update(layout.map_fd, _KEY, b"".join(values))
        carried = {"b": ComponentCounts("b", {0: 0, 1: 5, 2: 0, 3: 0, 4: 0}, 1)}
        write_base(layout, names, carried)

        cpu_sum = cpus * (cpus + 1) // 2
        live = {i: [cpu_sum * count(i, r) for r in range(layout.rows)] for i in range(len(names))}
        live[0][2] = sum(live[1])  # a's pass: what entered b
        expected = []
        for i, name in enumerate(names):
            row = live[i]
            if name == "b":
                row = [row[0], row[1] + 5, row[2], row[3], row[4], row[5] + 1]
            expected.append(ComponentCounts(name, dict(enumerate(row[:5])), row[5]))
        assert read_counts(layout, names) == expected
    finally:
        counters.close()
