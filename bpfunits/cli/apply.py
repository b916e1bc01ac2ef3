"""`bpfunits apply`: make every hook run its chain, one atomic kernel operation per hook."""

from __future__ import annotations

import argparse

from bpfunits.cli import common, report
from bpfunits.kernel import netns
from bpfunits.reconcile.engine import reconcile


def register(sub) -> None:
    p = common.subcommand(
        sub,
        "apply",
        help="make the kernel run the units' chains",
        description="Plan, then carry the plan out: each changed hook gets its new chain in one atomic "
        "operation (never detached first). A hook with errors keeps what it runs; the others proceed. "
        "Exit 0: nothing to change (or applied, without --detailed-exitcode); 2: changes applied "
        "(with --detailed-exitcode); 1: errors.",
    )
    common.add_units_options(p)
    common.add_kernel_options(p)
    report.add_result_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with netns.inside(args.netns):
        result = reconcile(common.config(args), apply=True)
    report.show(result, args.json)
    return report.exit_code(result, args.detailed_exitcode)
