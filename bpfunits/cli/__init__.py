"""The `bpfunits` command: one module per subcommand, registered here."""

from __future__ import annotations

import argparse
import sys

from bpfunits import __version__
from bpfunits.cli import apply, completion, daemon, order, plan, probe, status, top, verify
from bpfunits.cli.common import UNIT_LANGUAGE
from bpfunits.errors import BpfUnitsError

COMMANDS = (verify, order, plan, apply, status, top, daemon, probe, completion)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="bpfunits",
        description="Declarative chains of independent eBPF programs on XDP and tc hooks. Drop unit files "
        "into /etc/bpfunits.d; bpfunits orders them per interface and hook.",
        epilog=UNIT_LANGUAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"bpfunits {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except BpfUnitsError as exc:
        print(f"bpfunits: {exc}", file=sys.stderr)
        return 1
