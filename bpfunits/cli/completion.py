"""`bpfunits completion SHELL`: print a shell completion script for bpfunits."""

from __future__ import annotations

import argparse

from bpfunits import completion


def register(sub) -> None:
    p = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for bash or zsh: commands, options, --format values, "
        "folders for --units-dir, files for --config, names under /run/netns for --netns. "
        "bash: `source <(bpfunits completion bash)`, or save it as "
        "/usr/share/bash-completion/completions/bpfunits. zsh: `source <(bpfunits completion zsh)` "
        "after compinit.",
    )
    p.add_argument("shell", choices=sorted(completion.SHELLS), help="the shell to complete in")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the top-level parser imports this module.
    from bpfunits.cli import parser

    print(completion.SHELLS[args.shell](parser()), end="")
    return 0
