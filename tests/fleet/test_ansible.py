"""The Ansible role, run for real against localhost with the units folder in tmp_path."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fleet.example_units import EXAMPLES, comparable

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "packaging" / "ansible" / "site.yml"
EXAMPLE_VARS = ROOT / "packaging" / "ansible" / "example-vars.yml"
BPFUNITS = str(Path(sys.executable).with_name("bpfunits"))
OBJECTS = ROOT / "bpf" / "examples"


def ansible(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """ansible-playbook on localhost, its temp files and Ansible home inside tmp_path."""
    tmp = tmp_path / "ansible-tmp"
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp / "local"),
               ANSIBLE_REMOTE_TEMP=str(tmp / "remote"), ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               TMPDIR=str(tmp))
    return subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         *args, str(PLAYBOOK)],
        capture_output=True, text=True, env=env, timeout=120,
        # Ansible refuses a non-blocking stdin, which a test before may have left the shared one.
        stdin=subprocess.DEVNULL)


def play(tmp_path: Path, units: list[dict], *args: str, **variables) -> subprocess.CompletedProcess:
    """The playbook with these units into tmp_path/live; no service, no plan unless asked."""
    settings = {"bpfunits_units_dir": str(tmp_path / "live"), "bpfunits_service": "", "bpfunits_plan": False,
                "bpfunits_executable": BPFUNITS, "bpfunits_units": units, **variables}
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(settings))
    return ansible(tmp_path, "-e", f"@{extra}", *args)


def recap(run: subprocess.CompletedProcess) -> dict[str, int]:
    """The PLAY RECAP counters of localhost."""
    match = re.search(r"^localhost\s+:\s+(.*)$", run.stdout, re.M)
    assert match, run.stdout + run.stderr
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def task_status(run: subprocess.CompletedProcess, task: str) -> str:
    """ok, changed, skipping or fatal: how the task named `task` ended on localhost."""
    section = run.stdout.split(f"{task}] ")[1]
    match = re.search(r"^(ok|changed|skipping|fatal): \[localhost\]", section, re.M)
    assert match, section
    return match.group(1)


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def staging_left(tmp_path: Path) -> list[str]:
    return [p.name for p in (tmp_path / "ansible-tmp").glob("bpfunits-staging.*")]


UNITS = [
    {"name": "ratelimit", "description": "Per-source SYN rate limiter", "before": ["connlimit"],
     "object": str(OBJECTS / "ratelimit.bpf.o"), "program": "xdp_ratelimit", "hook": "xdp",
     "interfaces": ["bpfu-fl*", "!bpfu-fl-mgmt"], "position": "first", "proceed_on": ["pass"]},
    {"name": "connlimit", "after": ["ratelimit"], "object": str(OBJECTS / "connlimit.bpf.o"), "hook": "xdp",
     "interfaces": "bpfu-fl0", "globals": {"default_max_conns": 50}, "map_policies": ["config merge"],
     "map_entries": ["config 0 {max_conns=10}"]},
    {"name": "counted", "source": str(ROOT / "bpf" / "bcc_counter.c"), "define": {"SLOTS": 4, "DEBUG": 1},
     "hook": "tc-egress", "interfaces": ["bpfu-fl0"], "proceed_on": ["ok", "next"]},
]

EXPECTED = {
    "connlimit.unit": f"""\
# Managed by the bpfunits Ansible role or Salt formula: edits here are overwritten.

[Unit]
After=ratelimit

[Program]
Object={OBJECTS}/connlimit.bpf.o
Global=default_max_conns=50

[Attach]
Hook=xdp
Interfaces=bpfu-fl0

[Map]
Policy=config merge
Entry=config 0 {{max_conns=10}}
""",
    "counted.unit": f"""\
# Managed by the bpfunits Ansible role or Salt formula: edits here are overwritten.

[Program]
Source={ROOT}/bpf/bcc_counter.c
Define=SLOTS=4 DEBUG=1

[Attach]
Hook=tc-egress
Interfaces=bpfu-fl0
ProceedOn=ok next
""",
    "ratelimit.unit": f"""\
# Managed by the bpfunits Ansible role or Salt formula: edits here are overwritten.

[Unit]
Description=Per-source SYN rate limiter
Before=connlimit

[Program]
Object={OBJECTS}/ratelimit.bpf.o
Name=xdp_ratelimit

[Attach]
Hook=xdp
Interfaces=bpfu-fl* !bpfu-fl-mgmt
Position=first
ProceedOn=pass
""",
}


def test_playbook_syntax(tmp_path):
    run = ansible(tmp_path, "--syntax-check")
    assert run.returncode == 0, run.stdout + run.stderr


def test_units_are_rendered_verified_and_installed(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    (live / "stale.unit").write_text("[Attach]\nHook=xdp\n")
    (live / "stale.yaml").write_text("attach: {hook: xdp}\n")
    (live / "README").write_text("not a unit: kept")

    run = play(tmp_path, UNITS)

    assert run.returncode == 0, run.stdout + run.stderr
    assert contents(live) == {**EXPECTED, "README": "not a unit: kept"}
    verify = subprocess.run([BPFUNITS, "verify", "--units-dir", str(live)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.strip().endswith("3 units valid, 0 errors, 0 warnings")
    assert staging_left(tmp_path) == []


def test_example_vars_are_the_example_chain(tmp_path):
    # verify opens the objects: those of this checkout stand in for the installed ones.
    units = [dict(u, object=str(OBJECTS / Path(u["object"]).name))
             for u in yaml.safe_load(EXAMPLE_VARS.read_text())["bpfunits_units"]]
    run = play(tmp_path, units)
    assert run.returncode == 0, run.stdout + run.stderr
    assert comparable(tmp_path / "live") == comparable(EXAMPLES)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A units folder as a first run of the play with UNITS leaves it."""
    tmp_path = tmp_path_factory.mktemp("installed")
    run = play(tmp_path, UNITS)
    assert recap(run)["changed"] > 0
    assert contents(tmp_path / "live") == EXPECTED
    return tmp_path / "live"


def test_second_run_changes_nothing(tmp_path, installed):
    shutil.copytree(installed, tmp_path / "live")
    second = play(tmp_path, UNITS)
    assert recap(second) | {"ok": 0, "skipped": 0} == {
        "ok": 0, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 0}


def test_a_broken_set_fails_before_anything_is_installed(tmp_path, installed):
    shutil.copytree(installed, tmp_path / "live")
    before = contents(tmp_path / "live")
    cycle = [dict(UNITS[0], before=["connlimit"]), dict(UNITS[1], before=["ratelimit"], after=[]),
             dict(UNITS[2], description="changed too")]

    run = play(tmp_path, cycle)

    assert run.returncode != 0
    assert recap(run)["failed"] == 1
    assert "ordering cycle" in run.stdout
    assert contents(tmp_path / "live") == before
    assert staging_left(tmp_path) == []


def test_check_mode_shows_the_change_and_changes_nothing(tmp_path, installed):
    shutil.copytree(installed, tmp_path / "live")
    before = contents(tmp_path / "live")
    changed = [dict(UNITS[1], description="Per-source connection limiter")] + UNITS[::2]

    run = play(tmp_path, changed, "--check", "--diff")

    assert run.returncode == 0, run.stdout + run.stderr
    assert "+Description=Per-source connection limiter" in run.stdout
    assert recap(run)["changed"] == 1
    assert contents(tmp_path / "live") == before
    assert staging_left(tmp_path) == []


@pytest.mark.parametrize("name", ["../escape", "a b", ""])
def test_unit_names_are_checked(tmp_path, name):
    run = play(tmp_path, [dict(UNITS[1], name=name)])
    assert recap(run)["failed"] == 1
    assert "names must be unique" in run.stdout
    assert not (tmp_path / "live").exists()


def test_duplicate_names_are_refused(tmp_path):
    run = play(tmp_path, [UNITS[1], UNITS[1]])
    assert recap(run)["failed"] == 1
    assert not (tmp_path / "live").exists()


@pytest.fixture
def plan_options(tmp_path, veth_pair, bpffs_root, bpf_objects) -> dict:
    """Role variables that run plan in a namespace of ours, with our own pins and lock."""
    config = tmp_path / "bpfunits.yaml"
    config.write_text(f"lock_file: {tmp_path / 'bpfunits.lock'}\n")
    return {"bpfunits_plan": True, "bpfunits_config": str(config),
            "bpfunits_plan_args": ["--netns", veth_pair.ns_a, "--bpffs-root", str(bpffs_root.path)]}


@pytest.mark.kernel
def test_plan_reports_pending_chains_until_they_are_applied(tmp_path, veth_pair, plan_options):
    """Plan exit 2 is "changed" until `bpfunits apply` (standing in for the service) has run
    the chain; then a run changes nothing."""
    units = [dict(u, interfaces=[veth_pair.if_a]) for u in UNITS[:2]]

    first = play(tmp_path, units, **plan_options)
    assert first.returncode == 0, first.stdout + first.stderr
    assert task_status(first, "Plan the kernel's chains") == "changed"

    apply = subprocess.run([BPFUNITS, "apply", "--config", plan_options["bpfunits_config"],
                            "--units-dir", str(tmp_path / "live"), *plan_options["bpfunits_plan_args"]],
                           capture_output=True, text=True)
    assert apply.returncode == 0, apply.stdout + apply.stderr

    second = play(tmp_path, units, **plan_options)
    assert second.returncode == 0, second.stdout + second.stderr
    assert task_status(second, "Plan the kernel's chains") == "ok"
    assert recap(second)["changed"] == 0


@pytest.mark.kernel
def test_plan_errors_fail_the_play(tmp_path, veth_pair, plan_options):
    """A unit whose program the kernel's verifier refuses passes verify (no kernel) but fails plan."""
    units = [dict(UNITS[1], interfaces=[veth_pair.if_a], object=str(ROOT / "bpf" / "invalid.bpf.o"), globals={},
                  map_policies=[], map_entries=[])]  # invalid.bpf.o has none of connlimit's globals and maps
    run = play(tmp_path, units, **plan_options)
    assert task_status(run, "Plan the kernel's chains") == "fatal"
    assert recap(run)["failed"] == 1
