"""`bpfunits order`: print each interface's chain per hook, as text, JSON or graphviz dot."""

from __future__ import annotations

import argparse
from itertools import pairwise

from bpfunits.cli import common
from bpfunits.order.chains import Ordering, order_all


def register(sub) -> None:
    p = common.subcommand(
        sub,
        "order",
        help="print each interface's chain per hook",
        description="Order the units on each interface and hook, as bpfunits would chain them. "
        "Without --interfaces, the host's interfaces. `--format dot | dot -Tsvg` draws the chains "
        "(solid) and the declarations that ordered them (dashed).",
    )
    common.add_units_options(p)
    p.add_argument("--interfaces", metavar="A,B", help="comma-separated interface names (default: the host's)")
    common.add_format_option(p, "dot")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    loaded = common.load(args)
    names = common.parse_interfaces(args.interfaces) or common.host_interfaces()
    ordering = order_all(loaded.units.values(), names)
    common.print_diagnostics(loaded.diagnostics + [e.diagnostic() for e in ordering.errors])
    {"text": _text, "json": _json, "dot": _dot}[args.format](ordering)
    return 1 if loaded.errors or ordering.errors else 0


def _text(ordering: Ordering) -> None:
    interface = None
    for key, chain in ordering.chains.items():
        if key.interface != interface:
            interface = key.interface
            print(interface)
        print(f"  {key.hook.value:<11} {' -> '.join(chain.names)}")


def _json(ordering: Ordering) -> None:
    common.print_json(
        {
            "chains": [
                {
                    "interface": key.interface,
                    "hook": key.hook.value,
                    "units": [
                        {
                            "name": u.name,
                            "file": str(u.path),
                            "proceed_on": sorted(u.proceed_on),
                            "position": u.position.value if u.position else None,
                        }
                        for u in chain.units
                    ],
                }
                for key, chain in ordering.chains.items()
            ],
            "errors": [
                {"interface": e.key.interface, "hook": e.key.hook.value, "units": list(e.units), "message": str(e)}
                for e in ordering.errors
            ],
        }
    )


def _dot(ordering: Ordering) -> None:
    def node(key, name: str) -> str:
        return f'"{key.interface}/{key.hook.value}/{name}"'

    print("digraph bpfunits {\n  rankdir=LR;\n  node [shape=box];")
    for i, (key, chain) in enumerate(ordering.chains.items()):
        print(f'  subgraph cluster_{i} {{\n    label="{key}";')
        for name in chain.names:
            print(f'    {node(key, name)} [label="{name}"];')
        for a, b in pairwise(chain.names):
            print(f"    {node(key, a)} -> {node(key, b)} [style=bold];")
        for edge in dict.fromkeys((e.first, e.then, e.reason) for e in chain.edges):
            print(f'    {node(key, edge[0])} -> {node(key, edge[1])} [style=dashed, label="{edge[2]}"];')
        print("  }")
    print("}")
