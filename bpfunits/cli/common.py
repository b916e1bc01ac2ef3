"""What every command shares: the units search path option, loading, host interfaces, help text."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path

from bpfunits.config import DEFAULT_FILE as DEFAULT_CONFIG
from bpfunits.config import Config, load_config
from bpfunits.hooks import TC_VERDICTS, XDP_VERDICTS
from bpfunits.units.diagnostics import Diagnostic
from bpfunits.units.keys import KEYS, SECTIONS
from bpfunits.units.search import DEFAULT_PATH, LoadResult, load_units


def _key_reference() -> str:
    lines = []
    for section in SECTIONS:
        lines.append(f"  [{section}]")
        for key in (k for k in KEYS if k.section == section):
            kind = " (list)" if key.is_list else ""
            lines.append(f"    {key.name + '=':13} {key.help}{kind}")
    return "\n".join(lines)


UNIT_LANGUAGE = f"""\
unit files:
  One program per unit, in /etc/bpfunits.d over /run/bpfunits.d over /usr/lib/bpfunits.d
  (same name: the higher folder wins; a symlink to /dev/null masks). NAME.unit is INI,
  NAME.yaml the same keys in lower case. Drop-ins NAME.d/*.conf add to or override a unit.
  A repeated list key appends; an empty one (After=) resets.

  [Unit]
  Description=Per-source SYN rate limiter
  After=scrubber
  Before=connlimit

  [Program]
  Object=ratelimit.bpf.o
  Name=xdp_ratelimit
  Global=default_burst=40

  [Attach]
  Hook=xdp
  Interfaces=eth0 veth* !veth-mgmt
  ProceedOn=pass

  [Map]
  Entry=config 0 {{rate=50 burst=100}}

  Values are typed by the object's BTF: integers (40, 0x28), true/false, enumerator
  names, "strings" for char arrays, [lists], {{member=value ...}} for structs, IPv4/IPv6
  and MAC addresses, prefixes (198.19.66.0/24) for LPM-trie keys, hex:0a0b for raw bytes.

keys:
{_key_reference()}

verdicts (ProceedOn=):
  xdp: {' '.join(XDP_VERDICTS)} (default: pass)
  tc:  {' '.join(TC_VERDICTS)} (default: ok next)
"""


def add_units_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"configuration file (default: {DEFAULT_CONFIG} if it exists, else built-in defaults)",
    )
    p.add_argument(
        "--units-dir",
        action="append",
        type=Path,
        metavar="DIR",
        help="a units folder, repeatable, highest precedence first; replaces the default search path "
        f"({' '.join(map(str, DEFAULT_PATH))})",
    )


def add_kernel_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bpffs-root", metavar="DIR",
                   help="bpffs folder for this instance's pins (overrides the configuration)")
    p.add_argument("--netns", metavar="NAME",
                   help="act inside this network namespace (a name under /run/netns, or a path)")


def add_format_option(p: argparse.ArgumentParser, *choices: str) -> None:
    p.add_argument("--format", choices=("text", "json") + choices, default="text", help="output format (default: text)")


def config(args: argparse.Namespace) -> Config:
    """The configuration file, with the command line's overrides."""
    return load_config(args.config).override(units_dirs=args.units_dir, bpffs_root=getattr(args, "bpffs_root", None))


def load(args: argparse.Namespace) -> LoadResult:
    # Folders named on the command line must exist; the configured path may be partly absent.
    settings = config(args)
    return load_units(settings.units_dirs, required=bool(args.units_dir), policy=settings.file_policy)


def host_interfaces() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


def parse_interfaces(value: str | None) -> list[str] | None:
    return None if value is None else [n for n in value.split(",") if n]


def print_diagnostics(diagnostics: list[Diagnostic]) -> None:
    for d in diagnostics:
        print(d, file=sys.stderr)


def print_json(document: dict) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


def subcommand(sub, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=UNIT_LANGUAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
