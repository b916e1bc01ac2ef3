"""Per-component verdict counters of a linked chain: a per-CPU array whose value holds, for each
component, one u64 per verdict code and one for any other code, laid out as CounterLayout says
(verdict-major, for the cache). A component's packets entered is the sum of its verdicts.

The chain counts into key 0. Key 1, which only user space writes, holds what each unit had counted
on the hook before this chain replaced the one there (see `carried`), every verdict written out in
the same layout: every count is the sum of both keys, so counters never go back while a unit stays
on its hook. _Reader is the one reader of that layout, write_base its one writer from user
space."""

from __future__ import annotations

import os
import struct
from operator import add
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.sys import bpf
from bpfunits.linker.component import LinkError
from bpfunits.linker.layout import CounterLayout
from bpfunits.linker.manifest import manifest_of


# Named for the verdict-major layout: a chain whose counters were laid out otherwise (an older
# bpfunits) has no map of this name, and shows no counters rather than wrong ones.
MAP_NAME = "bpfu_counts"
_KEY = struct.pack("<I", 0)
_BASE_KEY = struct.pack("<I", 1)
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
        fd = bpf.map_create(bpf.MapType.PERCPU_ARRAY, 4, shape.value_size, 2, name=MAP_NAME)
        self.layout = replace(shape, map_fd=fd)

    def read(self) -> list[ComponentCounts]:
        return read_counts(self.layout, self.names)

    def close(self) -> None:
        os.close(self.layout.map_fd)


def verdict_range(hook: Hook) -> tuple[int, int]:
    codes = hook.verdicts.values()
    return min(codes), max(codes)


def read_counts(layout: CounterLayout, names: list[str]) -> list[ComponentCounts]:
    """Each component's counts, summed over CPUs, the chain's own (key 0) plus those carried
    over to it (key 1; none in a chain from before carried counts)."""
    return _Reader(layout, names).read()


class _Reader:
    """read_counts, again and again: the lookup's buffers, where each component's counts lie in
    the value, and the carried counts (key 1) are found once, so that a read is one lookup and
    a few calls into C (a scrape of thousands of chains is mostly reads)."""

    def __init__(self, layout: CounterLayout, names: list[str]) -> None:
        self.names = names
        self._width = layout.rows  # counts per component
        self._low = layout.low
        cpus = bpf.possible_cpus()
        stride = (layout.value_size + 7) & ~7
        # Every component's row of counts, one after another (component-major).
        order = [layout.offset(i, r) for i in range(len(names)) for r in range(layout.rows)]
        # The words of those counts in each CPU's value (in the order they lie there), skipping
        # the rest (rows start on a cache line: most of the value is padding): one unpack picks
        # them for every CPU.
        at = sorted(order)
        gaps = [at[0]] + [b - a - 8 for a, b in zip(at, at[1:], strict=False)]
        cpu = "".join(f"{gap}xQ" if gap else "Q" for gap in gaps) + f"{stride - at[-1] - 8}x"
        self._unpack = struct.Struct("<" + cpu * cpus).unpack
        # Each count, in the order wanted, is the sum of every CPU's copy of its word: one
        # strided slice of what the unpack gives (which holds each CPU's words in turn).
        position = {offset: k for k, offset in enumerate(at)}
        self._columns = [slice(position[o], None, len(at)) for o in order]
        # Per component, the row whose count is derived (see CounterLayout), or None.
        self._derived = [None if (code := layout.derived(i)) is None else code - layout.low
                         for i in range(len(names))]
        self._lookup = bpf.PercpuLookup(layout.map_fd, _KEY, layout.value_size)
        carried = bpf.PercpuLookup(layout.map_fd, _BASE_KEY, layout.value_size)()
        self._carried = self._sum(carried) if carried is not None and any(carried) else None

    def _sum(self, value: bytes) -> list[int]:
        """The components' rows in `value` (every CPU's), summed over CPUs."""
        return list(map(sum, map(self._unpack(value).__getitem__, self._columns)))

    def rows(self) -> list[tuple[str, list[int]]]:
        """Each component's name and counts, one per verdict code from the layout's low to its
        high and a last one for any other code (read's counts, before making them
        ComponentCounts: a scrape of thousands of chains needs no more)."""
        value = self._lookup()
        rows = self._width
        live = self._sum(value) if value is not None else [0] * (len(self.names) * rows)
        out: list[tuple[str, list[int]]] = []
        entered_next = 0  # packets that entered the component after this one in this chain
        for i in reversed(range(len(self.names))):
            row = live[i * rows:(i + 1) * rows]
            derived = self._derived[i]
            if derived is not None:
                row[derived] = entered_next  # derived, in this chain's own counts only
            entered_next = sum(row)
            if self._carried is not None:
                row = list(map(add, row, self._carried[i * rows:(i + 1) * rows]))
            out.append((self.names[i], row))
        return out[::-1]

    def read(self) -> list[ComponentCounts]:
        codes = range(self._low, self._low + self._width - 1)
        return [ComponentCounts(name, dict(zip(codes, row, strict=False)), row[-1]) for name, row in self.rows()]


def write_base(layout: CounterLayout, names: list[str], counts: dict[str, ComponentCounts]) -> None:
    """Set the carried counts (key 1) of the components `names` to `counts` (by unit; 0 for the
    others), every verdict written out, on the first CPU: readers sum over CPUs."""
    words = [0] * (layout.value_size // 8)
    for i, name in enumerate(names):
        c = counts.get(name)
        if c is None:
            continue
        for r in range(layout.rows - 1):
            words[layout.offset(i, r) // 8] = c.verdicts.get(layout.low + r, 0)
        words[layout.offset(i, layout.rows - 1) // 8] = c.unknown
    value = struct.pack(f"<{len(words)}Q", *words)
    bpf.map_update(layout.map_fd, _BASE_KEY, value + bytes(len(value) * (bpf.possible_cpus() - 1)))


class OpenCounters:
    """A linked chain's counters, held open to be read again and again (close() releases them)."""

    def __init__(self, layout: CounterLayout, names: list[str]) -> None:
        self.layout = layout
        self.names = names
        # The carried counts are written only around the swap that puts the chain on its hook
        # (see carried), which is over by the time anyone finds the chain there: read once.
        self._reader = _Reader(layout, names)

    def read(self) -> list[ComponentCounts]:
        return self._reader.read()

    def rows(self) -> list[tuple[str, list[int]]]:
        """read()'s counts as rows: see _Reader.rows."""
        return self._reader.rows()

    def close(self) -> None:
        os.close(self.layout.map_fd)


def open_counters(prog_id: int) -> OpenCounters | None:
    """The counters of the linked chain with this program id, named by its manifest; None when
    the program has no counters or no manifest, or counters of another layout."""
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
        fds.pop(MAP_NAME)
        return OpenCounters(layout, names)
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


@dataclass
class Carry:
    """What `carried` did: `failure` says why the counts were not (all) carried over."""
    failure: str | None = None


@contextmanager
def carried(old_prog_id: int | None, new_prog_fd: int) -> Iterator[Carry]:
    """Around the swap of a hook's chain (old_prog_id, None when there is none) for a new one
    (not attached yet): each unit on both keeps counting from what it had counted there.

    Before the swap the new chain starts from the old one's counts; after it, from the old
    one's final counts (what it counted in between included): the new chain's counts never go
    below what the old one showed. Only user space writes key 1, so no packet the datapath
    counts is lost to the write. Packets still inside the old program when the second read
    happens (microseconds after the swap) are not carried.

    Best effort: counters never hold up or undo a swap. Whatever fails here (the old program
    gone, a read or a write refused) leaves the new chain counting from what was carried so far
    (maybe 0), and the yielded Carry says why."""
    carry = Carry()
    old = new = None
    try:
        try:
            old = open_counters(old_prog_id) if old_prog_id is not None else None
            new = open_counters(_prog_id(new_prog_fd)) if old is not None else None
            if old is not None and new is not None:
                write_base(new.layout, new.names, {c.name: c for c in old.read()})
        except (BpfUnitsError, OSError) as e:
            carry.failure = f"counters not carried over before the swap: {e}"
        yield carry
        if carry.failure is None and old is not None and new is not None:
            try:
                write_base(new.layout, new.names, {c.name: c for c in old.read()})
            except (BpfUnitsError, OSError) as e:
                carry.failure = (f"counters not carried over after the swap (what the old chain counted during "
                                 f"the swap is lost): {e}")
    finally:
        for opened in (old, new):
            if opened is not None:
                opened.close()


def _prog_id(prog_fd: int) -> int:
    return bpf.prog_info(prog_fd).id
