"""The installable artifacts: the wheel, and the .deb that scripts/build-deb.sh builds."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from bpfunits import __version__
from tests.packaging.conftest import ROOT

ARCH = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
EXAMPLES = ("connlimit.unit", "counter.unit", "filter.yaml", "ratelimit.unit")
OBJECTS = ("connlimit.bpf.o", "counter.bpf.o", "filter.bpf.o", "ratelimit.bpf.o")


def deb(dist: Path) -> Path:
    return dist / f"bpfunits_{__version__}_{ARCH}.deb"


def dpkg_deb(*args) -> str:
    return subprocess.run(["dpkg-deb", *map(str, args)], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def unpacked(built_package, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    dpkg_deb("-x", deb(built_package), root)
    return root


def test_wheel_holds_the_package_data_and_the_command(built_package):
    with zipfile.ZipFile(built_package / f"bpfunits-{__version__}-py3-none-any.whl") as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(f"bpfunits-{__version__}.dist-info/entry_points.txt").decode()
    assert {"bpfunits/config.schema.json", "bpfunits/units/unit.schema.json", "bpfunits/completion.py"} <= names
    assert "bpfunits = bpfunits.cli:main" in entry_points


def test_deb_lists_the_expected_files(built_package):
    listed = {re.sub(r"^\./", "/", line.split()[-1]).rstrip("/") for line in dpkg_deb("-c", deb(built_package)).splitlines()}
    expected = {
        "/usr/bin/bpfunits",
        "/lib/systemd/system/bpfunits.service",
        "/usr/lib/tmpfiles.d/bpfunits.conf",
        "/usr/share/bash-completion/completions/bpfunits",
        "/etc/bpfunits/bpfunits.yaml",
        "/etc/bpfunits.d",
        "/usr/lib/bpfunits.d",
        "/usr/lib/bpfunits/python/bpfunits/cli/__init__.py",
        "/usr/lib/bpfunits/python/bpfunits/config.schema.json",
        "/usr/share/doc/bpfunits/README.md",
        "/usr/share/doc/bpfunits/copyright",
    } | {f"/usr/lib/bpfunits/{o}" for o in OBJECTS} | {f"/usr/share/doc/bpfunits/examples/{u}" for u in EXAMPLES}
    assert expected <= listed
    # Every module is byte-compiled at build time, so dpkg owns every file Python would write.
    sources = {p for p in listed if p.startswith("/usr/lib/bpfunits/python/bpfunits/") and p.endswith(".py")}
    compiled = {p for p in listed if p.endswith(".cpython-311.pyc") and "/bpfunits/python/bpfunits/" in p}
    assert len(compiled) == len(sources) > 0


def test_deb_control(built_package):
    fields = dict(re.findall(r"^ ?([A-Za-z-]+): (.*)$", dpkg_deb("-f", deb(built_package)), re.M))
    assert fields["Package"] == "bpfunits" and fields["Version"] == __version__ and fields["Architecture"] == ARCH
    assert "libbpf1" in fields["Depends"] and "python3-bpfcc" in fields["Recommends"]


def test_this_machine_satisfies_the_dependencies(built_package):
    depends = dpkg_deb("-f", deb(built_package), "Depends").strip()
    for dependency in depends.split(", "):
        name, _, constraint = dependency.partition(" ")
        installed = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, check=True).stdout
        if constraint:
            op, version = constraint.strip("()").split()
            assert subprocess.run(["dpkg", "--compare-versions", installed, op, version]).returncode == 0, (dependency, installed)


@pytest.mark.root
def test_installs_and_removes_cleanly_in_a_throwaway_root(built_package, tmp_path):
    # A real dpkg with its own database in tmp_path; maintainer scripts run outside the root
    # (there is no shell inside it) with DPKG_ROOT set, and so leave systemd alone.
    root = tmp_path / "root"
    for folder in ("info", "updates", "triggers"):
        (root / "var/lib/dpkg" / folder).mkdir(parents=True)
    (root / "var/lib/dpkg/status").touch()
    dpkg = ["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends"]

    def installed_files() -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_relative_to(root / "var")}

    subprocess.run(dpkg + ["-i", deb(built_package)], check=True, capture_output=True)
    run = subprocess.run([root / "usr/bin/bpfunits", "--version"], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == f"bpfunits {__version__}"
    assert "etc/bpfunits/bpfunits.yaml" in installed_files()
    subprocess.run(dpkg + ["-r", "bpfunits"], check=True, capture_output=True)
    # Removal keeps the configuration file (a conffile); purge takes it too.
    assert installed_files() == {"etc", "etc/bpfunits", "etc/bpfunits/bpfunits.yaml"}
    subprocess.run(dpkg + ["-P", "bpfunits"], check=True, capture_output=True)
    assert installed_files() == set()


def test_unpacked_cli_runs_on_debians_python(unpacked, tmp_path):
    cli = unpacked / "usr/bin/bpfunits"
    assert cli.read_text().startswith("#!/usr/bin/python3 -I\n")
    # No venv on PATH, and PYTHONPATH ignored: what runs is the package's own copy.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT)}
    where = subprocess.run([cli, "completion", "bash"], env=env, capture_output=True, text=True, check=True)
    assert where.stdout == (unpacked / "usr/share/bash-completion/completions/bpfunits").read_text()
    # The shipped examples point at the shipped objects, which verify opens: here, unpacked.
    units = tmp_path / "units"
    units.mkdir()
    for unit in EXAMPLES:
        text = (unpacked / "usr/share/doc/bpfunits/examples" / unit).read_text()
        assert re.search(r"/usr/lib/bpfunits/[a-z]+\.bpf\.o", text)
        (units / unit).write_text(text.replace("/usr/lib/bpfunits/", f"{unpacked}/usr/lib/bpfunits/"))
    run = subprocess.run([cli, "verify", "--units-dir", units], env=env, capture_output=True, text=True)
    assert (run.returncode, run.stdout.splitlines()[-1]) == (0, "4 units valid, 0 errors, 0 warnings"), run.stdout


@pytest.mark.kernel
def test_unpacked_package_attaches_the_shipped_examples(unpacked, demo_netns, bpffs_root, tmp_path):
    # The examples, pointed at the unpacked objects instead of /usr/lib/bpfunits.
    units = tmp_path / "units"
    units.mkdir()
    for unit in EXAMPLES:
        text = (unpacked / "usr/share/doc/bpfunits/examples" / unit).read_text()
        (units / unit).write_text(text.replace("/usr/lib/bpfunits/", f"{unpacked}/usr/lib/bpfunits/"))
    config = tmp_path / "bpfunits.yaml"
    config.write_text((unpacked / "etc/bpfunits/bpfunits.yaml").read_text())
    cli = demo_netns.enter() + [str(unpacked / "usr/bin/bpfunits"), "apply", "--detailed-exitcode",
                                "--units-dir", str(units), "--bpffs-root", str(bpffs_root.path), "--config", str(config)]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    first = subprocess.run(cli, env=env, capture_output=True, text=True)
    assert first.returncode == 2, first.stdout + first.stderr
    assert first.stdout.splitlines()[-1] == "4 applied"
    assert subprocess.run(cli, env=env, capture_output=True, text=True).returncode == 0
