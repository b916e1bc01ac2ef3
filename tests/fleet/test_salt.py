"""The Salt formula (packaging/salt), run for real with a masterless `salt-call --local`: the formula
as file root, a pillar of the test's own, the units folder in tmp_path, and for the kernel tests a
namespace of the test's own with `bpfunits apply` standing in for the service reload."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bpfunits.units.search import load_units
from tests.fleet.example_units import EXAMPLES, comparable
from tests.fleet.test_ansible import EXPECTED, OBJECTS, UNITS, contents, play

ROOT = Path(__file__).resolve().parents[2]
FORMULA = ROOT / "packaging" / "salt"
PINS = Path(__file__).with_name("salt-requirements.txt")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bpfunits"
BPFUNITS = str(Path(sys.executable).with_name("bpfunits"))


def salt_venv() -> Path:
    """A virtual environment with the pinned Salt, made once per machine in the cache folder (about
    a minute on a fresh one) and reused while the pins and the Python stay the same."""
    key = hashlib.sha256(PINS.read_bytes() + sys.version.encode()).hexdigest()[:12]
    venv = CACHE / f"salt-{key}"
    done = venv / ".installed"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "salt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time; the others wait and reuse it
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)  # a half-made one, from an interrupted install
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-compile", "-r", str(PINS)],
                                 capture_output=True, text=True)
            assert pip.returncode == 0, pip.stdout + pip.stderr
            done.touch()
    return venv


@dataclass(frozen=True)
class Salt:
    """salt-call of the pinned Salt; the formula's custom states synced once into `extmods`."""

    venv: Path
    extmods: Path

    def call(self, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
        """salt-call --local with a minion of tmp_path: the formula as file root, tmp_path/pillar as
        pillar root; every file Salt writes, and the formula's staging folder, inside tmp_path."""
        minion = tmp_path / "salt"
        (minion / "tmp").mkdir(parents=True, exist_ok=True)
        config = {"id": "bpfunits-test", "file_client": "local", "file_roots": {"base": [str(FORMULA)]},
                  "pillar_roots": {"base": [str(tmp_path / "pillar")]}, "extension_modules": str(self.extmods),
                  "cachedir": str(minion / "cache"), "pki_dir": str(minion / "pki"),
                  "sock_dir": str(minion / "sock"), "log_file": str(minion / "log")}
        (minion / "minion").write_text(json.dumps(config))
        env = dict(os.environ, TMPDIR=str(minion / "tmp"))
        return subprocess.run(
            [str(self.venv / "bin" / "salt-call"), "--local", "-c", str(minion), "-l", "quiet", "--out=json",
             "--retcode-passthrough", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="session")
def salt(tmp_path_factory) -> Salt:
    venv = salt_venv()
    tmp_path = tmp_path_factory.mktemp("salt-sync")
    made = Salt(venv, tmp_path / "extmods")
    sync = made.call(tmp_path, "saltutil.sync_states")
    assert "states.bpfunits" in sync.stdout, sync.stdout + sync.stderr
    return made


def set_pillar(tmp_path: Path, settings: dict) -> None:
    """The pillar key bpfunits = settings."""
    pillar = tmp_path / "pillar"
    pillar.mkdir(exist_ok=True)
    (pillar / "top.sls").write_text("base: {'*': [bpfunits]}\n")
    (pillar / "bpfunits.sls").write_text(json.dumps({"bpfunits": settings}))  # JSON is YAML


def apply(salt: Salt, tmp_path: Path, settings: dict, *args: str) -> subprocess.CompletedProcess:
    """`state.apply bpfunits` with these settings."""
    set_pillar(tmp_path, settings)
    return salt.call(tmp_path, "state.apply", "bpfunits", *args)


def settings(tmp_path: Path, units: list[dict], **more) -> dict:
    """Formula settings with these units into tmp_path/live; no service, no plan unless asked."""
    return {"units_dir": str(tmp_path / "live"), "service": "", "plan": False, "executable": BPFUNITS,
            "units": units, **more}


def states(run: subprocess.CompletedProcess) -> dict[str, dict]:
    """Each state's result by its ID."""
    out = json.loads(run.stdout)["local"]
    assert isinstance(out, dict), out  # a list: the formula did not render
    return {state["__id__"]: state for state in out.values()}


def changed(run: subprocess.CompletedProcess) -> set[str]:
    return {sid for sid, state in states(run).items() if state["changes"]}


def staging_left(tmp_path: Path) -> list[str]:
    return [p.name for p in (tmp_path / "salt" / "tmp").glob("bpfunits-staging.*")]


def test_rendered_files_are_the_ansible_roles(salt, tmp_path):
    """Same data, same bytes: a host moves from the Ansible role to the formula without a change.
    Both purge units and drop-ins they were not given, and keep other files."""
    for tool in ("ansible", "salt"):
        live = tmp_path / tool / "live"
        live.mkdir(parents=True)
        (live / "stale.unit").write_text("[Attach]\nHook=xdp\n")
        (live / "stale.yaml").write_text("attach: {hook: xdp}\n")
        (live / "README").write_text("not a unit: kept")

    by_ansible = play(tmp_path / "ansible", UNITS)
    by_salt = apply(salt, tmp_path / "salt", settings(tmp_path / "salt", UNITS))

    assert by_ansible.returncode == 0, by_ansible.stdout + by_ansible.stderr
    assert by_salt.returncode == 0, by_salt.stdout + by_salt.stderr
    ansible_files = {p.name: p.read_bytes() for p in (tmp_path / "ansible" / "live").iterdir()}
    salt_files = {p.name: p.read_bytes() for p in (tmp_path / "salt" / "live").iterdir()}
    assert salt_files == ansible_files
    assert contents(tmp_path / "salt" / "live") == {**EXPECTED, "README": "not a unit: kept"}
    assert staging_left(tmp_path / "salt") == []


def test_yaml_units_mean_what_ini_units_do(salt, tmp_path):
    ini = tmp_path / "ini"
    ini.mkdir()
    for name, text in EXPECTED.items():
        (ini / name).write_text(text)

    run = apply(salt, tmp_path, settings(tmp_path, [dict(u, format="yaml") for u in UNITS]))

    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in (tmp_path / "live").iterdir()) == ["connlimit.yaml", "counted.yaml",
                                                                     "ratelimit.yaml"]
    assert comparable(tmp_path / "live") == comparable(ini)


def test_dropins_and_masks(salt, tmp_path):
    """A drop-in's list replaces the unit's; a mask hides a unit of a lower folder; both are purged
    when no longer listed, the drop-in's folder with them."""
    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "legacy.unit").write_text(f"[Program]\nObject={OBJECTS}/connlimit.bpf.o\n[Attach]\nHook=xdp\nInterfaces=lab9\n")
    with_both = settings(tmp_path, UNITS[:2], extra_units_dirs=[str(lower)], masks=["legacy"],
                         dropins=[{"unit": "connlimit", "name": "50-lab", "interfaces": ["lab0", "lab1"],
                                   "description": "lab"}])

    run = apply(salt, tmp_path, with_both)

    assert run.returncode == 0, run.stdout + run.stderr
    live = tmp_path / "live"
    assert (live / "legacy.unit").read_bytes() == b""
    assert (live / "connlimit.d" / "50-lab.conf").read_text() == (
        "# Managed by the bpfunits Ansible role or Salt formula: edits here are overwritten.\n\n"
        "[Unit]\nDescription=lab\n\n[Attach]\nInterfaces=\nInterfaces=lab0 lab1\n")
    loaded = load_units((live, lower), required=True)
    assert sorted(loaded.units) == ["connlimit", "ratelimit"]
    assert loaded.units["connlimit"].interfaces == ("lab0", "lab1")

    again = apply(salt, tmp_path, settings(tmp_path, UNITS[:2], extra_units_dirs=[str(lower)]))

    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(p.name for p in live.iterdir()) == ["connlimit.unit", "ratelimit.unit"]
    assert set(states(again)["bpfunits-units"]["changes"]) == {"legacy.unit", "connlimit.d/50-lab.conf"}


def test_without_purge_the_units_that_stay_are_verified_with_the_set(salt, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    (live / "other.unit").write_text(f"[Unit]\nAfter=connlimit\n[Program]\nObject={OBJECTS}/connlimit.bpf.o\n"
                                     "[Attach]\nHook=xdp\nInterfaces=bpfu-fl0\n")
    run = apply(salt, tmp_path, settings(tmp_path, UNITS[:2], purge=False))
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(contents(live)) == ["connlimit.unit", "other.unit", "ratelimit.unit"]

    (live / "other.unit").write_text((live / "other.unit").read_text() + "[Unit]\nBefore=ratelimit\n")
    before = contents(live)
    cycle = apply(salt, tmp_path, settings(tmp_path, [dict(UNITS[0], description="changed")], purge=False))
    assert "ordering cycle" in states(cycle)["bpfunits-units"]["comment"]
    assert contents(live) == before


def test_pillar_example_is_the_example_chain(salt, tmp_path):
    example = yaml.safe_load((FORMULA / "bpfunits" / "pillar.example").read_text())["bpfunits"]
    assert example["dropins"] and example["masks"]  # shown there; the chain is the units alone
    # verify opens the objects: those of this checkout stand in for the installed ones.
    units = [dict(u, object=str(OBJECTS / Path(u["object"]).name)) for u in example["units"]]
    run = apply(salt, tmp_path, settings(tmp_path, units))
    assert run.returncode == 0, run.stdout + run.stderr
    assert comparable(tmp_path / "live") == comparable(EXAMPLES)


def test_the_service_is_reloaded_when_units_or_chains_change(salt, tmp_path):
    """With systemd (which these tests do not touch: the states are only shown, not run), the
    service is kept running and reloaded when the units or the chains changed."""
    set_pillar(tmp_path, settings(tmp_path, UNITS, service="bpfunits", plan=True))
    shown = salt.call(tmp_path, "state.show_sls", "bpfunits")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rendered = json.loads(shown.stdout)["local"]
    service = rendered["bpfunits-service"]["service"]
    for argument in ("running", {"name": "bpfunits"}, {"enable": True}, {"reload": True},
                     {"watch": [{"bpfunits": "bpfunits-units"}, {"bpfunits": "bpfunits-plan"}]}):
        assert argument in service
    assert "bpfunits-reload" not in rendered


@pytest.mark.parametrize("units", [[dict(UNITS[1], name="../escape")], [UNITS[1], dict(UNITS[1], format="yaml")]],
                         ids=["path", "twice"])
def test_unit_names_are_checked(salt, tmp_path, units):
    run = apply(salt, tmp_path, settings(tmp_path, units))
    assert run.returncode != 0
    assert "names must be unique" in states(run)["bpfunits-units"]["comment"]
    assert not (tmp_path / "live").exists()


@dataclass(frozen=True)
class Host:
    """The formula's settings for units on a veth in a namespace of the test's own, with its own
    pins and lock; `bpfunits apply` is the reload."""

    settings: dict
    kernel_args: list[str]

    def units(self, units: list[dict]) -> dict:
        return dict(self.settings, units=units)

    def bpfunits(self, command: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([BPFUNITS, command, *self.kernel_args, *args], capture_output=True, text=True)

    def chains(self) -> dict[str, list[str]]:
        """hook -> the active units of its chain, for the hooks that run one."""
        status = self.bpfunits("status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        return {h["hook"]: [u["unit"] for u in h["units"] if u["state"] == "active"]
                for h in json.loads(status.stdout)["hooks"] if h["program"]}


@pytest.fixture
def host(tmp_path, veth_pair, bpffs_root, bpf_objects) -> Host:
    config = tmp_path / "bpfunits.yaml"
    config.write_text(f"lock_file: {tmp_path / 'bpfunits.lock'}\n")
    plan_args = ["--netns", veth_pair.ns_a, "--bpffs-root", str(bpffs_root.path)]
    kernel_args = ["--config", str(config), "--units-dir", str(tmp_path / "live"), *plan_args]
    return Host(settings(tmp_path, [], plan=True, config=str(config), plan_args=plan_args,
                         reload_command=shlex.join([BPFUNITS, "apply", *kernel_args])), kernel_args)


@pytest.fixture
def chain(veth_pair) -> list[dict]:
    """Two XDP units and a tc-egress one on the test's veth."""
    counter = {"name": "counter", "object": str(OBJECTS / "counter.bpf.o"), "program": "tc_counter",
               "hook": "tc-egress"}
    return [dict(u, interfaces=[veth_pair.if_a]) for u in (*UNITS[:2], counter)]


@pytest.mark.kernel
def test_a_hosts_life(salt, tmp_path, host, chain):
    """One host through the runs the formula is for (one test: each step needs the ones before)."""
    live = tmp_path / "live"
    running = {"xdp": ["ratelimit", "connlimit"], "tc-egress": ["counter"]}

    # The first run installs the units, plan reports the chains missing, the reload attaches them.
    first = apply(salt, tmp_path, host.units(chain))
    assert first.returncode == 0, first.stdout + first.stderr
    assert changed(first) == {"bpfunits-units", "bpfunits-plan", "bpfunits-reload"}
    assert host.chains() == running
    installed = contents(live)

    # The second changes nothing.
    second = apply(salt, tmp_path, host.units(chain))
    assert second.returncode == 0, second.stdout + second.stderr
    assert changed(second) == set()
    assert states(second)["bpfunits-plan"]["comment"] == "every hook runs its units' chain"

    # A dry run shows each file's diff and the chains that would change, and changes nothing.
    dry = apply(salt, tmp_path, host.units([chain[1], dict(chain[0], description="Per-source SYN limiter")]),
                "test=True")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    units = states(dry)["bpfunits-units"]
    assert units["result"] is None
    assert "+Description=Per-source SYN limiter" in units["changes"]["ratelimit.unit"]
    assert units["changes"]["counter.unit"].startswith("--- counter.unit\n+++ /dev/null\n")
    assert "tc-egress" in units["changes"]["plan"]
    assert states(dry)["bpfunits-reload"]["result"] is None  # would run; did not
    assert (contents(live), host.chains()) == (installed, running)

    # A cycle fails the run before anything is installed or reloaded.
    cycle = [dict(chain[0], before=["connlimit"]), dict(chain[1], before=["ratelimit"], after=[]),
             dict(chain[2], description="changed too")]
    broken = apply(salt, tmp_path, host.units(cycle))
    assert broken.returncode != 0
    units = states(broken)["bpfunits-units"]
    assert units["result"] is False
    assert "ordering cycle" in units["comment"]
    assert not states(broken)["bpfunits-reload"]["changes"]
    assert (contents(live), host.chains()) == (installed, running)

    # A unit no longer in the pillar leaves the folder, and its hook.
    removed = apply(salt, tmp_path, host.units(chain[:2]))
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert sorted(contents(live)) == ["connlimit.unit", "ratelimit.unit"]
    assert host.chains() == {"xdp": ["ratelimit", "connlimit"]}
    assert staging_left(tmp_path) == []
