"""`bpfunits verify`: lint every unit and every hook's ordering; exit 1 on any error."""

from __future__ import annotations

import argparse

from bpfunits.cli import common
from bpfunits.order.chains import order_all, unknown_references, verification_interfaces
from bpfunits.units.diagnostics import Severity


def register(sub) -> None:
    p = common.subcommand(
        sub,
        "verify",
        help="check unit files and their ordering",
        description="Check every unit on the search path: syntax, keys, values, references, and that "
        "each interface's hooks can be ordered (no cycles, no First/Last conflicts). Orders against "
        "the host's interfaces plus every interface a unit names outright. Exit 1 on any error.",
    )
    common.add_units_options(p)
    p.add_argument("--interfaces", metavar="A,B", help="order against these interfaces instead")
    common.add_format_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    loaded = common.load(args)
    units = list(loaded.units.values())
    names = common.parse_interfaces(args.interfaces) or verification_interfaces(units, common.host_interfaces())
    ordering = order_all(units, names)
    diagnostics = loaded.diagnostics + unknown_references(loaded.units, loaded.masked)
    diagnostics += [e.diagnostic() for e in ordering.errors]
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    if args.format == "json":
        common.print_json(
            {
                "ok": errors == 0,
                "units": sorted(loaded.units),
                "masked": sorted(loaded.masked),
                "errors": errors,
                "warnings": warnings,
                "diagnostics": [d.to_json() for d in diagnostics],
            }
        )
    else:
        for d in diagnostics:
            print(d)
        print(f"{len(units)} units valid, {errors} errors, {warnings} warnings")
    return 1 if errors else 0
