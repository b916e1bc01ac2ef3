"""`bpfunits status`: each hook's chain in order, unit by unit, with packets and verdicts."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict

from bpfunits.cli import common, events
from bpfunits.daemon import statefile
from bpfunits.declare.entries import EntryStatus, entry_status
from bpfunits.errors import BpfUnitsError
from bpfunits.sys import netns
from bpfunits.hooks.observe import Attached
from bpfunits.reconcile.engine import reconcile
from bpfunits.reconcile.status import HookStatus, status_of


def register(sub) -> None:
    p = common.subcommand(
        sub,
        "status",
        help="show each hook's chain with counters",
        description="For each interface and hook of this network namespace: the chain in order with each "
        "unit's state (active, pending, removing, failed), the program id and tag, packets that entered "
        "each unit and the verdicts it returned (from the chain's counters), errors, and foreign "
        "programs; where the daemon keeps failing, how often and when it tries again (from its state_file). "
        "Answers: which unit in my chain dropped this traffic? Changes nothing in the datapath.",
    )
    common.add_units_options(p)
    common.add_kernel_options(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--maps", action="store_true",
                   help="also show each unit's declared map entries ([Map] Entry=) and whether the kernel's maps "
                   "hold them (ok, missing, differs; undeclared: an entry an exact map holds that apply removes)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = common.config(args)
    with netns.inside(args.netns):
        result = reconcile(config, apply=False)
        inode = netns.current_inode()
    try:
        retries = statefile.read(config.state_file, inode, strict=config.strict_permissions)
    except BpfUnitsError as e:
        print(f"warning: {e}", file=sys.stderr)
        retries = {}
    hooks = status_of(result, retries)
    entries = entry_status(result.declared, result.entries) if args.maps else []
    if args.json:
        diagnostics = [d.to_json() for d in result.diagnostics]
        doc = {"hooks": [_json(h) for h in hooks], "events": [events.to_json(e) for e in result.events],
               "diagnostics": diagnostics}
        if args.maps:
            doc["maps"] = [e.to_json() for e in entries]
        common.print_json(doc)
    else:
        common.print_diagnostics(result.diagnostics)
        for h in hooks:
            _text(h)
        events.print_status(result.events)
        if args.maps:
            _maps_text(entries, result.entry_errors)
    return 1 if result.failed else 0


def _json(h: HookStatus) -> dict:
    program = h.program
    return {
        "interface": h.key.interface,
        "hook": h.key.hook.value,
        "program": None if program is None else {
            "id": program.prog_id, "tag": program.tag, "backend": program.backend.value, "mode": program.mode,
            "link_id": program.link_id},
        "pending": h.pending,
        "units": [asdict(u) for u in h.units],
        "errors": list(h.errors),
        "foreign": [_foreign_json(f) for f in h.foreign],
        "retry": None if h.retry is None else {
            "failures": h.retry.failures, "next_try_in": round(max(0.0, h.retry.next_try - time.time()), 1),
            "error": h.retry.error},
    }


def _maps_text(entries: list[EntryStatus], errors: list[str]) -> None:
    print("declared map entries:" if entries else "declared map entries: none")
    for e in entries:
        found = f" (kernel: {e.found})" if e.found is not None else ""
        print(f"    {e.unit}: {e.map} {e.key} = {e.value}  {e.state}{found}")
    for error in errors:
        print(f"    ! {error}")


def _foreign_json(f: Attached) -> dict:
    document = {"id": f.prog_id, "name": f.name, "tag": f.tag, "backend": f.backend.value}
    if f.dispatcher:
        document["dispatcher"] = {
            "kind": "libxdp",
            "version": f.dispatcher.version,
            "programs": [
                {"id": s.prog_id, "name": s.name, "run_prio": s.run_prio,
                 "chain_call_actions": list(s.chain_call_actions)}
                for s in f.dispatcher.slots
            ],
        }
    return document


def _text(h: HookStatus) -> None:
    program = h.program
    where = f"prog {program.prog_id} tag {program.tag} via {program.backend.value}" if program else "no chain attached"
    pending = "" if h.pending == "unchanged" else f", pending: {h.pending}"
    print(f"{h.key}  ({where}{pending})")
    if h.units:
        print(f"    {'unit':<20} {'state':<9} {'packets':>10}  verdicts")
    for u in h.units:
        packets = "-" if u.packets is None else str(u.packets)
        verdicts = " ".join(f"{name}={n}" for name, n in sorted(u.verdicts.items(), key=lambda kv: -kv[1]))
        print(f"    {u.unit:<20} {u.state:<9} {packets:>10}  {verdicts}")
    for f in h.foreign:
        print(f"    foreign: {f.name or '?'} (id {f.prog_id}, {f.backend.value})")
        if f.dispatcher:
            print(f"      libxdp dispatcher v{f.dispatcher.version}, in run order:")
        for s in f.dispatcher.slots if f.dispatcher else ():
            ident = f"id {s.prog_id}" if s.prog_id is not None else "pin unreadable"
            print(f"      {s.name or '?'} ({ident}, priority {s.run_prio}, "
                  f"chain call on {','.join(s.chain_call_actions) or 'nothing'})")
    for e in h.errors:
        print("    ! " + e.replace("\n", "\n      "))
    if h.retry is not None:
        wait = max(0.0, h.retry.next_try - time.time())
        print(f"    the daemon failed here {h.retry.failures} time{'s' if h.retry.failures > 1 else ''} in a row; "
              f"it tries again in {wait:.0f} s")
