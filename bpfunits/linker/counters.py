"""Per-component verdict counters of a linked chain: one per-CPU array with a single value that
holds, for each component, one u64 per verdict code and one for any other code. A component's
packets entered is the sum of its verdicts, so each component costs one increment."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from bpfunits.hooks import Hook
from bpfunits.sys import bpf
from bpfunits.linker.layout import CounterLayout
from bpfunits.linker.manifest import manifest_of


MAP_NAME = "bpfu_counters"
_KEY = struct.pack("<I", 0)


@dataclass(frozen=True)
class ComponentCounts:
    name: str
    verdicts: dict[int, int]  # verdict code -> packets the component returned it for
    unknown: int  # packets with a code the hook does not define

    @property
    def entered(self) -> int:
        return sum(self.verdicts.values()) + self.unknown


class ChainCounters:
    """Owns the counter map (close() releases it; a loaded program keeps its own reference)."""

    def __init__(self, hook: Hook, names: list[str]) -> None:
        low, high = verdict_range(hook)
        self.names = list(names)
        value_size = len(self.names) * (high - low + 2) * 8
        fd = bpf.map_create(bpf.MapType.PERCPU_ARRAY, 4, value_size, 1, name=MAP_NAME)
        self.layout = CounterLayout(fd, low, high)

    def read(self) -> list[ComponentCounts]:
        return read_counts(self.layout, self.names)

    def close(self) -> None:
        os.close(self.layout.map_fd)


def verdict_range(hook: Hook) -> tuple[int, int]:
    codes = hook.verdicts.values()
    return min(codes), max(codes)


def read_counts(layout: CounterLayout, names: list[str]) -> list[ComponentCounts]:
    """Each component's counts, summed over CPUs."""
    slots = layout.slots
    totals = [0] * (len(names) * slots)
    for value in bpf.map_lookup_percpu(layout.map_fd, _KEY, len(totals) * 8) or []:
        for n, count in enumerate(struct.unpack(f"<{len(totals)}Q", value)):
            totals[n] += count
    out = []
    for i, name in enumerate(names):
        row = totals[i * slots : (i + 1) * slots]
        out.append(ComponentCounts(name, {layout.low + s: row[s] for s in range(slots - 1)}, row[-1]))
    return out


def read_counters(prog_id: int) -> list[ComponentCounts] | None:
    """The counters of the linked chain with this program id, named by its manifest; None when
    the program has no counters or no manifest."""
    fds = bpf.prog_map_fds(prog_id)
    try:
        manifest = manifest_of(fds)
        if MAP_NAME not in fds or manifest is None:
            return None
        low, high = verdict_range(Hook(manifest.hook))
        names = [e.unit for e in manifest.components]
        return read_counts(CounterLayout(fds[MAP_NAME], low, high), names)
    finally:
        for fd in fds.values():
            os.close(fd)
