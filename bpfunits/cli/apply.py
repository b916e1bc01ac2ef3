"""`bpfunits apply`: make every hook run its chain, one atomic kernel operation per hook."""

from __future__ import annotations

from bpfunits.cli import report


def register(sub) -> None:
    report.register_reconcile(
        sub,
        "apply",
        apply=True,
        help="make the kernel run the units' chains",
        description="Plan, then carry the plan out: each changed hook gets its new chain in one atomic "
        "operation (never detached first). A hook with errors keeps what it runs; the others proceed. "
        "Exit 0: nothing to change (or applied, without --detailed-exitcode); 2: changes applied "
        "(with --detailed-exitcode); 1: errors.",
    )
