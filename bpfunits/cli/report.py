"""plan and apply, one reconcile carried out or not: options, printing (for people and as JSON), exit codes."""

from __future__ import annotations

import argparse

from bpfunits.cli import common, events
from bpfunits.sys import netns
from bpfunits.plan.model import ChainState
from bpfunits.reconcile.engine import HookResult, Outcome, Result, reconcile

EXIT_OK, EXIT_ERROR, EXIT_CHANGED = 0, 1, 2


def register_reconcile(sub, name: str, *, apply: bool, help: str, description: str) -> None:
    """`plan` and `apply`: the same reconcile, carried out or not."""
    p = common.subcommand(sub, name, help=help, description=description)
    common.add_units_options(p)
    common.add_kernel_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when there are changes (0: none, 1: errors), as terraform does",
    )
    p.set_defaults(run=lambda args: _run(args, apply))


def _run(args: argparse.Namespace, apply: bool) -> int:
    with netns.inside(args.netns):
        result = reconcile(common.config(args), apply=apply)
    show(result, args.json, apply)
    return exit_code(result, args.detailed_exitcode)


def exit_code(result: Result, detailed: bool) -> int:
    if result.failed:
        return EXIT_ERROR
    return EXIT_CHANGED if detailed and result.changed else EXIT_OK


def show(result: Result, as_json: bool, applied: bool = True) -> None:
    if as_json:
        common.print_json(to_json(result))
        return
    common.print_diagnostics(result.diagnostics)
    for hook in result.hooks:
        if hook.outcome is Outcome.UNCHANGED:
            continue
        plan = hook.plan
        print(f"{hook.key}: {plan.action.value} ({hook.outcome.value})")
        for mark, names in (("+", plan.added), ("-", plan.removed), ("~", plan.moved), ("*", plan.changed)):
            for name in names:
                print(f"  {mark} {name}")
        if plan.desired is not None and plan.action.value != "unchanged":
            print(f"  chain: {' -> '.join(plan.desired.units) or '(empty)'}")
        failed = hook.outcome in (Outcome.BLOCKED, Outcome.FAILED)
        for line in plan.reasons + tuple(e for e in hook.errors if e not in plan.reasons):
            print(("  ! " if failed else "  note: ") + line.replace("\n", "\n    "))
        if hook.uncarried:
            print(f"  warning: {hook.uncarried}")
    events.print_changes(result.events)
    for unit in sorted({d.unit for d in result.entries}):
        print(f"unit {unit}: map entries ({'written' if applied else 'to write'})")
        for d in (d for d in result.entries if d.unit == unit):
            for line in d.lines():
                print(f"  {line}")
    for message in result.entry_errors:
        print(f"! {message}")
    counts = {o.value: sum(h.outcome is o for h in result.hooks) for o in Outcome}
    for e in result.events:
        counts[e.outcome] += 1
    print(", ".join(f"{n} {o}" for o, n in counts.items() if n) or "no hooks")


def to_json(result: Result) -> dict:
    return {
        "changed": result.changed,
        "failed": result.failed,
        "hooks": [_hook_json(h) for h in result.hooks],
        "events": [events.to_json(e) for e in result.events],
        "diagnostics": [d.to_json() for d in result.diagnostics],
        "entries": [d.to_json() for d in result.entries],
        "entry_errors": list(result.entry_errors),
    }


def _chain_json(chain: ChainState | None) -> list[dict] | None:
    if chain is None:
        return None
    return [{"unit": c.unit, "sha256": c.sha256, "tag": c.tag, "proceed_on": list(c.proceed_on)}
            for c in chain.components]


def _hook_json(h: HookResult) -> dict:
    p = h.plan
    return {
        "interface": h.key.interface,
        "hook": h.key.hook.value,
        "action": p.action.value,
        "outcome": h.outcome.value,
        "desired": _chain_json(p.desired),
        "running": _chain_json(p.observed),
        "added": list(p.added),
        "removed": list(p.removed),
        "moved": list(p.moved),
        "changed": list(p.changed),
        "reasons": list(p.reasons),
        "errors": list(h.errors),
        "warnings": [h.uncarried] if h.uncarried else [],
        "prog_id": h.prog_id,
    }
