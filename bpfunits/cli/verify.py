"""`bpfunits verify`: lint every unit, its program file and every hook's ordering; exit 1 on any
error."""

from __future__ import annotations

import argparse
import os

from bpfunits.cli import common
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import probe
from bpfunits.hooks.events import EventHook
from bpfunits.load.objcheck import check_program
from bpfunits.order.chains import ignored_order, order_all, unknown_references, verification_interfaces
from bpfunits.order.events import order_events
from bpfunits.units.diagnostics import Severity


def register(sub) -> None:
    p = common.subcommand(
        sub,
        "verify",
        help="check unit files and their ordering",
        description="Check every unit on the search path: syntax, keys, values, references, its "
        "program file (opened without the kernel: the program named or the one for the hook, its "
        "kind against the hook, its maps, SHA256=), and that each interface's hooks can be ordered "
        "(no cycles, no First/Last conflicts). Orders against the host's interfaces plus every "
        "interface a unit names outright, and the units of each cgroup hook (ordered where the kernel can: "
        "Linux 6.16+; as root verify asks the kernel, elsewhere it assumes so). Exit 1 on any error.",
    )
    common.add_units_options(p)
    p.add_argument("--load", action="store_true",
                   help="also load each program into the kernel to run its verifier, pinning nothing (root only)")
    p.add_argument("--interfaces", metavar="A,B", help="order against these interfaces instead")
    common.add_format_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.load and os.geteuid() != 0:
        raise BpfUnitsError("verify --load runs the kernel's verifier, which needs root")
    settings = common.config(args)
    loaded = common.load(args)
    units = list(loaded.units.values())
    # As root the kernel says whether it orders cgroup hooks (probing also raises RLIMIT_MEMLOCK
    # where the kernel charges BPF memory to it, for --load); otherwise that is not known here.
    on_cgroups = any(isinstance(u.hook, EventHook) and u.hook.orderable for u in units)
    features = probe.features() if os.geteuid() == 0 and (args.load or on_cgroups) else None
    names = common.parse_interfaces(args.interfaces) or verification_interfaces(units, common.host_interfaces())
    ordering = order_all(units, names)
    programs = [d for u in sorted(units, key=lambda u: u.name)
                for d in check_program(u, settings.file_policy, trial_load=args.load)]
    diagnostics = loaded.diagnostics + programs + unknown_references(loaded.units, loaded.masked)
    diagnostics += ignored_order(units, features)
    event_errors = order_events(units).errors if features is None or features.has(probe.CGROUP_MPROG) else []
    diagnostics += [e.diagnostic() for e in ordering.errors + event_errors]
    valid = len(units) - len({d.unit for d in programs if d.severity is Severity.ERROR})
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
        print(f"{valid} units valid, {errors} errors, {warnings} warnings")
    return 1 if errors else 0
