#!/usr/bin/env python3
"""Prints the kernel matrix's table from its results folder (run-vm.sh's OUT folders, and `host/`, which
`make test-host` writes: the host's own kernel has no image on disk to boot, so its row is the host suite).
One row per kernel: backends chosen (from `bpfunits probe --json`), tests passed/failed/skipped (junit),
the demo, and times; then skip reasons and each failure's error line. Exits 1 if any VM kernel failed
(the host suite's own exit status is `make test-host`'s).
Usage: summary.py RESULTS KERNELS_LIST
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    name: str
    kernel: str = "?"
    package: str = "-"
    backends: str = "?"
    passed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (test, error line)
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    demo: str = "-"
    boot: str = "-"
    tests: str = "-"
    demo_time: str = "-"
    wall: str = "-"
    problems: list[str] = field(default_factory=list)  # why the row failed, beyond failed tests

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems


def read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def first_line(text: str | None, limit: int = 200) -> str:
    line = next((s.strip() for s in (text or "").splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def backends(folder: Path) -> str:
    text = read(folder / "probe.json")
    if not text:
        return "?"
    try:
        chosen = json.loads(text).get("backends") or {}
    except ValueError:
        return "?"
    # {"xdp": "link", "tc": "tcx"} -> "xdp-link tcx"
    return " ".join(f"xdp-{v}" if k == "xdp" and not str(v).startswith("xdp") else str(v) for k, v in chosen.items())


def read_junit(row: Row, path: Path) -> float | None:
    """Fills the row's counts from a junit file; returns the suite's time in seconds."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        row.problems.append(f"no test results ({path.name}: {e.__class__.__name__})")
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for case in root.iter("testcase"):
        test = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            row.failed.append((test, first_line(bad.get("message")) or first_line(bad.text)))
        elif skip is not None:
            row.skipped[first_line(skip.get("message")) or "(no reason)"] += 1
        else:
            row.passed += 1
    return sum(float(s.get("time", 0)) for s in suites)


def read_verbose_log(row: Row, path: Path) -> None:
    """Counts from `pytest -v` lines (`tests/x.py::test PASSED [ 10%]`), for a run killed before its junit."""
    for line in (read(path) or "").splitlines():
        test, _, rest = line.partition(" ")
        outcome = rest.split(" ", 1)[0]
        if "::" not in test or not test.startswith("tests/"):
            continue
        test = test.rsplit("/", 1)[-1].removesuffix(".py")
        if outcome == "PASSED":
            row.passed += 1
        elif outcome in ("FAILED", "ERROR"):
            row.failed.append((test, "(no junit: see pytest.log)"))
        elif outcome == "SKIPPED":
            row.skipped["(no junit: see pytest.log)"] += 1


def secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}s"


def host_row(folder: Path) -> Row:
    row = Row("host", kernel=f"{read(folder / 'kernel') or '?'} (host)", backends=backends(folder), demo="in suite")
    row.wall = secs(read_junit(row, folder / "junit.xml"))
    row.tests = row.wall
    return row


def vm_row(name: str, folder: Path) -> Row:
    row = Row(name, kernel=read(folder / "kernel") or f"{name} (no guest)", backends=backends(folder))
    row.package = (read(folder / "package") or "-").split()[-1]
    if not folder.is_dir():
        row.problems.append("not run")
        return row
    stamps = {}
    for line in (read(folder / "times") or "").splitlines():
        step, _, uptime = line.partition(" ")
        stamps[step] = float(uptime)
    row.boot = secs(stamps.get("booted"))
    start = stamps.get("probed", stamps.get("booted"))
    if start is not None and "tested" in stamps:
        row.tests = secs(stamps["tested"] - start)
    if "tested" in stamps and "demoed" in stamps:
        row.demo_time = secs(stamps["demoed"] - stamps["tested"])
    wall = read(folder / "wall")
    row.wall = f"{wall}s" if wall else "-"
    vm_rc = read(folder / "vm.rc")
    if vm_rc == "124":
        row.problems.append("VM timed out (BPFUNITS_VM_TIMEOUT)")
    if "booted" not in stamps:
        row.problems.append(f"guest script never ran (vng exit {vm_rc}; see console.log)")
        return row
    if (folder / "junit.xml").exists():
        read_junit(row, folder / "junit.xml")
    else:
        read_verbose_log(row, folder / "pytest.log")
    pytest_rc = read(folder / "pytest.rc")
    if pytest_rc in ("124", "137"):
        row.problems.append("pytest timed out (BPFUNITS_VM_PYTEST_TIMEOUT)")
    elif pytest_rc not in ("0", "1", None):
        row.problems.append(f"pytest exited {pytest_rc} (see pytest.log)")
    demo_rc = read(folder / "demo.rc")
    row.demo = {"0": "ok", None: "-", "124": "TIMEOUT"}.get(demo_rc, f"FAIL({demo_rc})")
    if demo_rc is None:
        row.problems.append("demo did not run to its end")
    elif demo_rc != "0":
        log = (read(folder / "demo.log") or "").splitlines()
        # The first error bpfunits printed ("  ! ..."), else the demo's verdict ("demo failed: ..."), else the
        # last error line, else the last line.
        why = next((s.strip() for s in log if s.lstrip().startswith("! ")), None) or next(
            (s for s in log if s.startswith("demo failed")), None) or next(
            (s.strip() for s in reversed(log) if "Error" in s or "error:" in s or "did not" in s),
            log[-1] if log else "")
        row.problems.append(f"demo: {first_line(why)}" if demo_rc != "124" else "demo timed out")
    return row


def main(results: Path, kernels_list: Path) -> int:
    names = [s.split()[0] for s in kernels_list.read_text().splitlines() if s.strip() and not s.startswith("#")]
    rows = ([host_row(results / "host")] if (results / "host").is_dir() else []) + [
        vm_row(n, results / n) for n in names]
    head = ("kernel", "package", "backends", "passed", "failed", "skipped", "demo", "boot", "tests", "demo", "wall", "")
    table = [head] + [
        (r.kernel, r.package, r.backends, str(r.passed), str(len(r.failed)), str(sum(r.skipped.values())), r.demo,
         r.boot, r.tests, r.demo_time, r.wall, "ok" if r.ok else "FAILED")
        for r in rows
    ]
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    print(f"\nkernel matrix (results in {results})")
    for i, t in enumerate(table):
        cells = enumerate(zip(t, widths, strict=True))
        print("  ".join(c.ljust(w) if j < 3 or j == 6 else c.rjust(w) for j, (c, w) in cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        if r.skipped or r.failed or r.problems:
            print(f"\n{r.kernel}:")
        for reason, n in r.skipped.most_common():
            print(f"  skipped {n:3}: {reason}")
        for test, error in r.failed:
            print(f"  FAILED {test}: {error}")
        for problem in r.problems:
            print(f"  {problem}")
    return 0 if all(r.ok for r in rows if r.name != "host") else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
