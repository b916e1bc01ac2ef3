"""Per-component verdict counters of a linked chain: one per-CPU array with a single value that
holds, for each component, one u64 per verdict code and one for any other code, laid out as
CounterLayout says. A component's packets entered is the sum of its verdicts, so each component
costs one increment. read_counts is the one reader of that layout."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, replace

from bpfunits.hooks import Hook
from bpfunits.sys import bpf
from bpfunits.linker.component import LinkError
from bpfunits.linker.layout import CounterLayout
from bpfunits.linker.manifest import manifest_of


# Named for the verdict-major layout: a chain whose counters were laid out otherwise (an older
# bpfunits) has no map of this name, and shows no counters rather than wrong ones.
MAP_NAME = "bpfu_counts"
_KEY = struct.pack("<I", 0)
# The kernel's limit on a per-CPU map value (PCPU_MIN_UNIT_SIZE).
VALUE_MAX = 32768


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

    def __init__(self, hook: Hook, names: list[str], proceed_on: list[frozenset[int]], reachable: int) -> None:
        low, high = verdict_range(hook)
        self.names = list(names)
        shape = CounterLayout(-1, low, high, tuple(proceed_on), reachable)
        if shape.value_size > VALUE_MAX:
            raise LinkError(f"too many components ({len(self.names)}) to count")
        fd = bpf.map_create(bpf.MapType.PERCPU_ARRAY, 4, shape.value_size, 1, name=MAP_NAME)
        self.layout = replace(shape, map_fd=fd)

    def read(self) -> list[ComponentCounts]:
        return read_counts(self.layout, self.names)

    def close(self) -> None:
        os.close(self.layout.map_fd)


def verdict_range(hook: Hook) -> tuple[int, int]:
    codes = hook.verdicts.values()
    return min(codes), max(codes)


def read_counts(layout: CounterLayout, names: list[str]) -> list[ComponentCounts]:
    """Each component's counts, summed over CPUs."""
    words = layout.value_size // 8
    totals = [0] * words
    for value in bpf.map_lookup_percpu(layout.map_fd, _KEY, layout.value_size) or []:
        for n, count in enumerate(struct.unpack(f"<{words}Q", value)):
            totals[n] += count

    last = layout.rows - 1
    out: list[ComponentCounts] = []
    entered_next = 0  # packets that entered the component after this one
    for i in reversed(range(len(names))):
        row = [totals[layout.offset(i, r) // 8] for r in range(layout.rows)]
        code = layout.derived(i)
        if code is not None:
            row[code - layout.low] = entered_next
        counts = ComponentCounts(names[i], {layout.low + r: row[r] for r in range(last)}, row[last])
        entered_next = counts.entered
        out.append(counts)
    return out[::-1]


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
        reachable = sum(e.mode != "unreachable" for e in manifest.components)
        layout = CounterLayout(fds[MAP_NAME], low, high, tuple(frozenset(e.proceed_on) for e in manifest.components),
                               reachable)
        if bpf.map_info(layout.map_fd).value_size != layout.value_size:
            return None  # not the layout this manifest's chain would have
        return read_counts(layout, names)
    finally:
        for fd in fds.values():
            os.close(fd)
