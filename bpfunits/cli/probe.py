"""`bpfunits probe`: what this kernel offers and which backends bpfunits will use on it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from bpfunits.cli import common
from bpfunits.config import load_config
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import probe
from bpfunits.hooks.probe import Features, TcBackend, XdpBackend


def register(sub) -> None:
    p = common.subcommand(
        sub,
        "probe",
        help="show the kernel features bpfunits uses and the backends it will choose",
        description="Probe this kernel for every feature bpfunits depends on (as `bpftool feature probe` "
        "does: by trying each where nothing real is touched, in a private network namespace) and print "
        "each with the Linux release that brought it, the XDP and tc backends the configuration leads to "
        f"here, and what is missing. bpfunits is tested on Linux {probe.MINIMUM_TESTED} and newer. "
        "Exit 1 when this kernel cannot run bpfunits or a configured backend is missing.",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="configuration file (its xdp_backend and tc_backend)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def _backends(args: argparse.Namespace, features: Features) -> tuple[dict[str, str], list[str]]:
    config = load_config(args.config)
    chosen: dict[str, str] = {}
    errors: list[str] = []
    xdp, tc = XdpBackend(config.xdp_backend), TcBackend(config.tc_backend)
    choices: tuple[tuple[str, Callable[[], Enum]], ...] = (
        ("xdp", lambda: probe.choose_xdp_backend(xdp, features)),
        ("tc", lambda: probe.choose_tc_backend(tc, features)),
    )
    for hook, choose in choices:
        try:
            chosen[hook] = choose().value
        except BpfUnitsError as e:
            errors.append(str(e))
    return chosen, errors


def run(args: argparse.Namespace) -> int:
    features = probe.features()
    backends, errors = _backends(args, features)
    errors = features.unmet() + errors
    if args.json:
        common.print_json({**features.to_json(), "backends": backends, "errors": errors})
    else:
        _text(features, backends, errors)
    return 1 if errors else 0


def _text(features: Features, backends: dict[str, str], errors: list[str]) -> None:
    print(f"kernel {features.kernel}")
    width = max(len(p.feature.key) for p in features.probed)
    for p in features.probed:
        mark = "yes" if p.available else "no "
        line = f"  {p.feature.key:<{width}}  {mark}  {p.feature.title}, Linux {p.feature.since}: {p.feature.used_for}"
        print(line + (f"\n  {'':<{width}}       ({p.reason})" if p.reason else ""))
    print("backends: " + ", ".join(f"{hook} {name}" for hook, name in backends.items()))
    for error in errors:
        print(f"error: {error}")
