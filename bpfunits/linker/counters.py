"""Per-component verdict counters of a linked chain: a per-CPU array whose value holds, for each
component, one u64 per verdict code and one for any other code. A component's packets entered is
the sum of its verdicts, so each component costs one increment.

The chain counts into key 0. Key 1, which only user space writes, holds what each unit had counted
on the hook before this chain replaced the one there (see `carried`): every count is the sum of
both keys, so counters never go back while a unit stays on its hook. read_counts is the one
reader of that layout, write_base its one writer from user space."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bpfunits.hooks import Hook
from bpfunits.sys import bpf
from bpfunits.linker.layout import CounterLayout
from bpfunits.linker.manifest import manifest_of


MAP_NAME = "bpfu_counters"
_KEY = struct.pack("<I", 0)
_BASE_KEY = struct.pack("<I", 1)


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
        fd = bpf.map_create(bpf.MapType.PERCPU_ARRAY, 4, value_size, 2, name=MAP_NAME)
        self.layout = CounterLayout(fd, low, high)

    def read(self) -> list[ComponentCounts]:
        return read_counts(self.layout, self.names)

    def close(self) -> None:
        os.close(self.layout.map_fd)


def verdict_range(hook: Hook) -> tuple[int, int]:
    codes = hook.verdicts.values()
    return min(codes), max(codes)


def read_counts(layout: CounterLayout, names: list[str], carried: list[int] | None = None,
                lookup: bpf.PercpuLookup | None = None) -> list[ComponentCounts]:
    """Each component's counts, summed over CPUs and over the chain's own and carried counts (a
    chain from before carried counts has no key 1). `carried`: key 1 as read_carried() found it
    earlier, rather than read again; `lookup`: key 0's, made once for many reads."""
    totals = _sum(layout, names, _KEY, lookup)
    for n, count in enumerate(_sum(layout, names, _BASE_KEY) if carried is None else carried):
        totals[n] += count
    slots = layout.slots
    out = []
    for i, name in enumerate(names):
        row = totals[i * slots : (i + 1) * slots]
        out.append(ComponentCounts(name, {layout.low + s: row[s] for s in range(slots - 1)}, row[-1]))
    return out


def read_carried(layout: CounterLayout, names: list[str]) -> list[int]:
    """Key 1, for read_counts to add."""
    return _sum(layout, names, _BASE_KEY)


def _sum(layout: CounterLayout, names: list[str], key: bytes, lookup: bpf.PercpuLookup | None = None) -> list[int]:
    words = len(names) * layout.slots
    values = lookup() if lookup is not None else bpf.map_lookup_percpu(layout.map_fd, key, words * 8)
    if not values:
        return [0] * words
    form = struct.Struct(f"<{words}Q")
    return [sum(column) for column in zip(*(form.unpack(v) for v in values), strict=True)]


def write_base(layout: CounterLayout, names: list[str], counts: dict[str, ComponentCounts]) -> None:
    """Set the carried counts (key 1) of the components `names` to `counts` (by unit; 0 for the
    others), on the first CPU: readers sum over CPUs."""
    slots = layout.slots
    row = [0] * (len(names) * slots)
    for i, name in enumerate(names):
        c = counts.get(name)
        if c is None:
            continue
        for s in range(slots - 1):
            row[i * slots + s] = c.verdicts.get(layout.low + s, 0)
        row[i * slots + slots - 1] = c.unknown
    value = struct.pack(f"<{len(row)}Q", *row)
    bpf.map_update(layout.map_fd, _BASE_KEY, value + bytes(len(value) * (bpf.possible_cpus() - 1)))


class OpenCounters:
    """A linked chain's counters, held open to be read again and again (close() releases them)."""

    def __init__(self, layout: CounterLayout, names: list[str]) -> None:
        self.layout = layout
        self.names = names
        # The carried counts are written only around the swap that puts the chain on its hook
        # (see carried), which is over by the time anyone finds the chain there: read once.
        self._carried = read_carried(layout, names)
        self._lookup = bpf.PercpuLookup(layout.map_fd, _KEY, len(names) * layout.slots * 8)

    def read(self) -> list[ComponentCounts]:
        return read_counts(self.layout, self.names, self._carried, self._lookup)

    def close(self) -> None:
        os.close(self.layout.map_fd)


def open_counters(prog_id: int) -> OpenCounters | None:
    """The counters of the linked chain with this program id, named by its manifest; None when
    the program has no counters or no manifest."""
    fds = bpf.prog_map_fds(prog_id)
    try:
        manifest = manifest_of(fds)
        if MAP_NAME not in fds or manifest is None:
            return None
        low, high = verdict_range(Hook(manifest.hook))
        names = [e.unit for e in manifest.components]
        return OpenCounters(CounterLayout(fds.pop(MAP_NAME), low, high), names)
    finally:
        for fd in fds.values():
            os.close(fd)


def read_counters(prog_id: int) -> list[ComponentCounts] | None:
    """The counters of the linked chain with this program id (see open_counters)."""
    counters = open_counters(prog_id)
    if counters is None:
        return None
    try:
        return counters.read()
    finally:
        counters.close()


@contextmanager
def carried(old_prog_id: int | None, new_prog_fd: int) -> Iterator[None]:
    """Around the swap of a hook's chain (old_prog_id, None when there is none) for a new one
    (not attached yet): each unit on both keeps counting from what it had counted there.

    Before the swap the new chain starts from the old one's counts; after it, from the old
    one's final counts (what it counted in between included): the new chain's counts never go
    below what the old one showed. Only user space writes key 1, so no packet the datapath
    counts is lost to the write. Packets still inside the old program when the second read
    happens (microseconds after the swap) are not carried."""
    old = open_counters(old_prog_id) if old_prog_id is not None else None
    new = open_counters(_prog_id(new_prog_fd)) if old is not None else None
    try:
        if old is None or new is None:
            yield
            return
        write_base(new.layout, new.names, {c.name: c for c in old.read()})
        yield
        write_base(new.layout, new.names, {c.name: c for c in old.read()})
    finally:
        for opened in (old, new):
            if opened is not None:
                opened.close()


def _prog_id(prog_fd: int) -> int:
    return bpf.prog_info(prog_fd).id
