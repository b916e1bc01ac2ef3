"""`bpfunits plan`: what apply would change on each hook, and why; changes nothing in the datapath."""

from __future__ import annotations

import argparse

from bpfunits.cli import common, report
from bpfunits.kernel import netns
from bpfunits.reconcile.engine import reconcile


def register(sub) -> None:
    p = common.subcommand(
        sub,
        "plan",
        help="show what apply would change",
        description="Compare the units with what the kernel runs on every hook of this network namespace "
        "and print, per hook: unchanged, create, replace (units + added, - removed, ~ moved, * changed), "
        "remove, or blocked (errors; the hook keeps what it runs). Programs are loaded and chains linked "
        "and verified, so verifier errors show here; nothing is attached or detached. New units' pinned "
        "maps may be created.",
    )
    common.add_units_options(p)
    common.add_kernel_options(p)
    report.add_result_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with netns.inside(args.netns):
        result = reconcile(common.config(args), apply=False)
    report.show(result, args.json)
    return report.exit_code(result, args.detailed_exitcode)
