"""`bpfunits top`: a live view of packets/s and drops/s per hook and unit, from the kernel."""

from __future__ import annotations

import argparse
import curses
import time
from collections.abc import Callable, Iterator
from itertools import islice

from bpfunits.cli import common
from bpfunits.errors import BpfUnitsError
from bpfunits.linker.counters import OpenCounters, open_counters
from bpfunits.hooks.observe import Observer
from bpfunits.reconcile import observed
from bpfunits.state.bpffs import StateRoot
from bpfunits.sys import bpf, netns
from bpfunits.top.rates import Reading, Row, rows, table

RELOOK = 5.0  # seconds between looks at which chains run where (counters are read every refresh)


def register(sub) -> None:
    p = common.subcommand(
        sub,
        "top",
        help="live packets/s and drops/s per hook and unit",
        description="A live terminal view, refreshed every second, of each unit's packets/s and drops/s on "
        "every hook of this network namespace (busiest first), with its totals, read from the chains' "
        "counters. q quits. For the operator on the box during an incident; Prometheus has the same "
        "numbers for the fleet. Changes nothing.",
    )
    common.add_units_options(p)
    common.add_kernel_options(p)
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="refresh period (default: 1)")
    p.add_argument("--batch", type=int, metavar="N",
                   help="print N refreshes as plain text instead of the live view (for scripts and logs)")
    p.set_defaults(run=run)


class Chains:
    """The counters of the chains running in the namespace, looked for again every RELOOK seconds."""

    def __init__(self, root: StateRoot, namespace: str | None) -> None:
        self._root, self._netns = root, namespace
        self._open: dict[int, OpenCounters | None] = {}
        self._hooks: dict = {}
        self._looked = -RELOOK

    def read(self) -> Reading:
        now = time.monotonic()
        if now - self._looked >= RELOOK:
            self._look()
            self._looked = now
        found: Reading = {}
        for key, prog_id in self._hooks.items():
            opened = self._open.get(prog_id)
            if opened is None:
                continue
            try:
                found[key] = opened.read()
            except bpf.BpfError:
                continue
        return found

    def _look(self) -> None:
        with netns.inside(self._netns):
            states = observed.read_all(observed.interfaces(), Observer(self._root, whole_namespace=True))
        self._hooks = {key: s.ours.prog_id for key, s in states.items() if s.ours is not None}
        for prog_id in [p for p in self._open if p not in self._hooks.values()]:
            opened = self._open.pop(prog_id)
            if opened is not None:
                opened.close()
        for prog_id in self._hooks.values():
            if prog_id not in self._open:
                try:
                    self._open[prog_id] = open_counters(prog_id)
                except bpf.BpfError:
                    continue  # replaced meanwhile: the next look finds its successor

    def close(self) -> None:
        for opened in self._open.values():
            if opened is not None:
                opened.close()


def run(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise BpfUnitsError(f"--interval must be positive (got {args.interval})")
    chains = Chains(StateRoot(common.config(args).bpffs_root), args.netns)
    try:
        if args.batch is not None:
            def sleep() -> bool:
                time.sleep(args.interval)
                return True

            for found in islice(refreshes(chains, sleep), args.batch):
                print(f"bpfunits top: {len({r.key for r in found})} hooks, {time.strftime('%H:%M:%S')}")
                print("\n".join(table(found, 200)) + "\n", flush=True)
            return 0
        return curses.wrapper(_live, chains, args.interval)
    finally:
        chains.close()


def refreshes(chains: Chains, wait: Callable[[], bool]) -> Iterator[list[Row]]:
    """Each refresh's rows, after wait() (which returns False to stop)."""
    before, at = chains.read(), time.monotonic()
    while wait():
        after, now = chains.read(), time.monotonic()
        yield rows(before, after, now - at)
        before, at = after, now


QUIT = (ord("q"), ord("Q"), 27)  # q, or Escape
HEADER_LINES = 2


def _live(screen: curses.window, chains: Chains, interval: float) -> int:
    curses.curs_set(0)
    screen.timeout(int(interval * 1000))  # getch() waits up to one interval for a key
    for found in refreshes(chains, lambda: screen.getch() not in QUIT):
        height, width = screen.getmaxyx()
        screen.erase()
        hooks = len({r.key for r in found})
        title = f"bpfunits top - {hooks} hooks, {len(found)} units - every {interval:g} s - q quits"
        screen.addnstr(0, 0, title, width - 1, curses.A_BOLD)
        for y, line in enumerate(table(found, width - 1)[: height - HEADER_LINES], start=HEADER_LINES):
            screen.addnstr(y, 0, line, width - 1, curses.A_REVERSE if y == HEADER_LINES else curses.A_NORMAL)
        screen.refresh()
    return 0
