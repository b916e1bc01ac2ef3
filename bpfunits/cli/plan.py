"""`bpfunits plan`: what apply would change on each hook, and why; changes nothing in the datapath."""

from __future__ import annotations

from bpfunits.cli import report


def register(sub) -> None:
    report.register_reconcile(
        sub,
        "plan",
        apply=False,
        help="show what apply would change",
        description="Compare the units with what the kernel runs on every hook of this network namespace "
        "and print, per hook: unchanged, create, replace (units + added, - removed, ~ moved, * changed), "
        "remove, or blocked (errors; the hook keeps what it runs). Programs are loaded and chains linked "
        "and verified, so verifier errors show here; nothing is attached, detached or pinned, and no folder is "
        "made. A pinned map whose shape changed is named: apply resets its entries.",
    )
