"""`bpfunits completion`: the scripts it prints, run by a real bash with simulated command lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpfunits.cli import parser
from bpfunits.completion import ValueKind, bash, commands


def _script(shell: str) -> str:
    run = subprocess.run([sys.executable, "-m", "bpfunits", "completion", shell], capture_output=True, text=True, check=True)
    return run.stdout


def complete(words: list[str], cwd: Path | None = None) -> list[str]:
    """What bash offers for the command line `words`, the cursor in the last word, as
    bash would call the function (`--opt=value` already split at '=')."""
    assignment = " ".join(f"'{w}'" for w in words)
    program = f"""source /dev/stdin <<'SCRIPT'
{_script("bash")}
SCRIPT
COMP_WORDS=({assignment}); COMP_CWORD={len(words) - 1}
_bpfunits bpfunits
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    run = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, cwd=cwd, check=True)
    assert run.stderr == ""
    return sorted(filter(None, run.stdout.splitlines()))


def test_subcommands_at_the_top_level():
    assert complete(["bpfunits", ""]) == sorted(
        ["-h", "--help", "--version", "verify", "order", "plan", "apply", "status", "top", "daemon", "probe", "completion"]
    )
    assert complete(["bpfunits", "ap"]) == ["apply"]


def test_options_of_a_command():
    assert complete(["bpfunits", "plan", "--"]) == sorted(
        ["--help", "--config", "--units-dir", "--bpffs-root", "--netns", "--json", "--detailed-exitcode"]
    )
    # Options already given do not hide the command.
    assert complete(["bpfunits", "apply", "--json", "--det"]) == ["--detailed-exitcode"]


def test_format_values_per_command():
    assert complete(["bpfunits", "order", "--format", ""]) == ["dot", "json", "text"]
    assert complete(["bpfunits", "verify", "--format", ""]) == ["json", "text"]
    assert complete(["bpfunits", "order", "--format", "=", "d"]) == ["dot"]
    assert complete(["bpfunits", "order", "--format", "="]) == ["dot", "json", "text"]


def test_units_dir_completes_folders_only(tmp_path):
    (tmp_path / "units.d").mkdir()
    (tmp_path / "unused.d").mkdir()
    (tmp_path / "units.yaml").write_text("")
    assert complete(["bpfunits", "verify", "--units-dir", "u"], cwd=tmp_path) == ["units.d", "unused.d"]
    assert complete(["bpfunits", "verify", "--units-dir", "units.d", "--units-dir", "un"], cwd=tmp_path) == ["units.d", "unused.d"]
    assert complete(["bpfunits", "verify", "--config", "units"], cwd=tmp_path) == ["units.d", "units.yaml"]


def test_free_values_and_the_shell_argument():
    assert complete(["bpfunits", "daemon", "--debounce", ""]) == []
    assert complete(["bpfunits", "completion", ""]) == ["--help", "-h", "bash", "zsh"]


def test_every_command_and_option_of_the_parser_is_in_the_model():
    top = parser()
    levels = {c.name: c for c in commands(top)}
    assert set(levels) == {""} | {"verify", "order", "plan", "apply", "status", "top", "daemon", "probe", "completion"}
    assert {o.kind for o in levels["plan"].options if "--units-dir" in o.names} == {ValueKind.DIRECTORY}
    # Every option of every command appears in the script.
    script = bash(top)
    for level in levels.values():
        for option in level.options:
            assert all(n in script for n in option.names)


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_parses():
    subprocess.run(["zsh", "-n", "-c", _script("zsh")], check=True)
