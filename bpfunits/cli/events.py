"""Units on event hooks in the output of plan, apply and status: one line each."""

from __future__ import annotations

from dataclasses import asdict

from bpfunits.reconcile.events import EventResult


def to_json(e: EventResult) -> dict:
    document = asdict(e)
    document["errors"], document["reasons"] = list(e.errors), list(e.reasons)
    document["order"], document["foreign"] = list(e.order), list(e.foreign)
    return document


def _foreign(e: EventResult) -> list[str]:
    """On a hook that runs its units in order: the programs of others there."""
    ids = ", ".join(f"id {p}" for p in e.foreign)
    return [f"foreign programs on the hook, left in place: {ids}"] if ids else []


def print_changes(events: list[EventResult]) -> None:
    """plan and apply: the event units that change or fail."""
    for e in events:
        if e.outcome == "unchanged":
            continue
        print(f"{e.hook} {e.unit}: {e.action} ({e.outcome})")
        failed = e.outcome in ("blocked", "failed")
        for line in e.reasons + e.errors:
            print(("  ! " if failed else "  note: ") + line.replace("\n", "\n    "))
        for line in ([f"order on the hook: {' -> '.join(e.order)}"] if e.order else []) + _foreign(e):
            print("  " + line)


def print_status(events: list[EventResult]) -> None:
    """status: each event unit, what runs it, and how often it ran."""
    for e in events:
        if e.link_id is None:
            where = "not attached"
        else:
            runs = "" if e.run_count is None else f", ran {e.run_count} times"
            where = f"prog {e.prog_id} link {e.link_id}{runs}"
        pending = "" if e.action == "unchanged" else f", pending: {e.action}"
        place = f", {e.order.index(e.unit) + 1} of {len(e.order)} in order" if e.unit in e.order else ""
        print(f"{e.hook}  {e.unit}  ({where}{place}{pending})")
        for line in _foreign(e):
            print("    " + line)
        for line in e.errors:
            print("    ! " + line.replace("\n", "\n      "))
