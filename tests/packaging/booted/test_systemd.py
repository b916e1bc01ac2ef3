"""The service under a real systemd: the package installed by apt in a booted Debian 12 container,
started, reloaded, stopped, hung and crashed through systemctl as an admin would."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.packaging.booted.conftest import DIST, Link
from tests.packaging.booted.container import Container
from tests.packaging.conftest import ROOT
from tests.timing import scaled
from tests.traffic import Flow

pytestmark = pytest.mark.kernel

T = TypeVar("T")
# The journal stamps each line: the daemon's own have no time (nor, with -o cat, their "<N>" priority).
DECISION = re.compile(r"^INFO bpfunits\.daemon: (bpfu-demo0 [a-z-]+): (.*)$")


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        if (found := probe()) is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def xdp_program(link: Link) -> tuple[int, str] | None:
    """The XDP program the kernel runs on the container's interface: (id, name)."""
    out = subprocess.run(["ip", "-n", link.ns, "-j", "-d", "link", "show", "dev", link.ifname],
                         capture_output=True, text=True, check=True).stdout
    prog = json.loads(out)[0].get("xdp", {}).get("prog")
    return (prog["id"], prog["name"]) if prog else None


def journal(c: Container) -> list[str]:
    return c.run("journalctl", "-u", "bpfunits", "-o", "cat", "--no-pager").stdout.splitlines()


def decisions(lines: list[str]) -> list[tuple[str, str]]:
    return [m.groups() for line in lines if (m := DECISION.search(line))]


def show(c: Container, *properties: str) -> dict[str, str]:
    out = c.run("systemctl", "show", "bpfunits", *(f"--property={p}" for p in properties)).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def wait_for_line(c: Container, after: int, pattern: str, timeout: float = 20) -> list[str]:
    """The journal's lines after the first `after`, once one of them matches `pattern`."""
    def probe() -> list[str] | None:
        lines = journal(c)[after:]
        return lines if any(re.search(pattern, line) for line in lines) else None
    return eventually(probe, timeout, f"a journal line matching {pattern!r}")


def nothing_to_do(c: Container) -> bool:
    """The package's own `bpfunits plan` finds every hook running what its units say."""
    return c.run("bpfunits", "plan", "--detailed-exitcode", check=False).returncode == 0


def test_start_returns_after_the_first_reconcile_with_its_status(container, link):
    assert xdp_program(link) is None
    container.run("systemctl", "start", "bpfunits")
    # Type=notify: by the time start returns, the chain is attached and the reconcile logged.
    assert xdp_program(link)[1] == "bpfu_chain"
    assert nothing_to_do(container)
    lines = journal(container)
    reconciled = next(i for i, line in enumerate(lines) if "reconcile (start): 2 hooks, 0 unchanged" in line)
    started = next(i for i, line in enumerate(lines) if line.startswith("Started bpfunits.service"))
    assert reconciled < started
    assert sorted(decisions(lines)) == [("bpfu-demo0 tc-egress", "create applied (+ counter)"),
                                        ("bpfu-demo0 xdp", "create applied (+ ratelimit, + connlimit, + filter)")]
    status = container.run("systemctl", "status", "bpfunits", "--no-pager").stdout
    assert 'Status: "2 hooks, 0 with errors"' in status
    assert "Active: active (running)" in status


def test_edits_and_reload_apply_with_one_journal_line_per_decision(container, link):
    container.run("systemctl", "start", "bpfunits")
    pid = show(container, "MainPID")["MainPID"]
    # A unit edit: the daemon follows /etc/bpfunits.d itself.
    mark = len(journal(container))
    container.sh("sed -i 's/^Interfaces=.*/Interfaces=none*/' /etc/bpfunits.d/connlimit.unit")
    lines = wait_for_line(container, mark, r"reconcile \(files changed \(.*connlimit\.unit\)\): ")
    assert decisions(lines) == [("bpfu-demo0 xdp", "replace applied (- connlimit)")]
    # The configuration is read again on reload only (ExecReload: SIGHUP to the daemon).
    mark = len(journal(container))
    container.write("/etc/bpfunits/bpfunits.yaml", "counters: false\n")
    container.run("systemctl", "reload", "bpfunits")
    lines = wait_for_line(container, mark, r"reconcile \(SIGHUP\): ")
    assert any(line.endswith("configuration reloaded") for line in lines)
    assert sorted(decisions(lines)) == [("bpfu-demo0 tc-egress", "replace applied: chain build changed: link1+counters -> link1"),
                                        ("bpfu-demo0 xdp", "replace applied: chain build changed: link1+counters -> link1")]
    assert show(container, "MainPID")["MainPID"] == pid
    assert nothing_to_do(container)
    assert 'Status: "2 hooks, 0 with errors"' in container.run("systemctl", "status", "bpfunits", "--no-pager").stdout
    # A unit whose object is missing blocks its hook: an error, at the journal's error priority.
    mark = len(journal(container))
    container.write("/etc/bpfunits.d/broken.unit", "[Program]\nObject=/nowhere.bpf.o\n[Attach]\nHook=xdp\nInterfaces=bpfu-demo0\n")
    wait_for_line(container, mark, r"reconcile \(files changed \(broken\.unit\)\): ")
    errors = container.run("journalctl", "-u", "bpfunits", "-o", "cat", "-p", "err", "--no-pager").stdout.splitlines()
    daemons = [line for line in errors if "bpfunits.daemon" in line]
    assert daemons and all(line.startswith("ERROR bpfunits.daemon: bpfu-demo0 xdp: blocked") for line in daemons), errors


def test_stop_leaves_the_chains_and_start_adopts_them(container, link):
    container.run("systemctl", "start", "bpfunits")
    running = xdp_program(link)
    container.run("systemctl", "stop", "bpfunits")
    assert show(container, "ActiveState", "Result") == {"ActiveState": "inactive", "Result": "success"}
    assert xdp_program(link) == running
    assert nothing_to_do(container)
    mark = len(journal(container))
    container.run("systemctl", "start", "bpfunits")
    lines = journal(container)[mark:]
    assert any("reconcile (start): 2 hooks, 2 unchanged" in line for line in lines), lines
    assert decisions(lines) == []
    assert xdp_program(link) == running


def test_a_hung_daemon_is_killed_by_the_watchdog_and_restarted_while_the_chain_runs(container, link):
    # An admin's drop-in shortens the watchdog, so the test waits seconds, not a minute.
    container.sh("mkdir -p /etc/systemd/system/bpfunits.service.d")
    container.write("/etc/systemd/system/bpfunits.service.d/watchdog.conf", "[Service]\nWatchdogSec=3s\n")
    container.run("systemctl", "daemon-reload")
    container.run("systemctl", "start", "bpfunits")
    running = xdp_program(link)
    hung = show(container, "MainPID")["MainPID"]
    seen = set()
    with Flow(link.peer_ns, link.peer, link.ns, link.ifname) as flow:
        container.run("systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", "bpfunits")

        def restarted() -> bool | None:
            seen.add(xdp_program(link))
            now = show(container, "MainPID", "ActiveState", "NRestarts")
            return True if now["MainPID"] not in (hung, "0") and now["ActiveState"] == "active" else None

        eventually(restarted, 30, "a new daemon after the watchdog")
        flow.stop()
    assert seen == {running}
    assert flow.arrived == flow.sent > 0
    assert show(container, "NRestarts")["NRestarts"] == "1"
    assert any("Watchdog timeout" in line for line in journal(container))
    assert xdp_program(link) == running and nothing_to_do(container)


def test_a_crash_loop_ends_in_the_failed_state_as_configured(container, link):
    container.run("systemctl", "start", "bpfunits")
    running = xdp_program(link)
    # A broken configuration: every start exits at once.
    container.write("/etc/bpfunits/bpfunits.yaml", "resync_period: soon\n")
    assert container.run("systemctl", "restart", "bpfunits", check=False).returncode != 0
    burst = int(show(container, "StartLimitBurst")["StartLimitBurst"])

    def given_up() -> dict[str, str] | None:
        now = show(container, "ActiveState", "NRestarts")
        return now if now["ActiveState"] == "failed" else None

    assert given_up() is None  # restarting, not given up at the first exit
    final = eventually(given_up, 60, "the start limit")
    lines = journal(container)
    assert "bpfunits.service: Start request repeated too quickly." in lines
    # Within the limit, counting the good start before: then no more.
    failed_starts = sum("resync_period: 'soon' is not of type 'number'" in line for line in lines)
    assert failed_starts == burst - 1 == int(final["NRestarts"])
    time.sleep(scaled(3))
    assert show(container, "ActiveState", "NRestarts") == final
    assert xdp_program(link) == running


def test_an_upgrade_restarts_the_daemon_on_the_new_build_and_keeps_the_chains(container, link, newer_package):
    container.run("systemctl", "enable", "--now", "bpfunits")
    running, old = xdp_program(link), show(container, "MainPID")["MainPID"]
    mark = len(journal(container))
    container.run("apt", "install", "-y", "-q", f"{DIST}/{newer_package}")
    version = container.run("dpkg-query", "-W", "-f=${Version}", "bpfunits").stdout
    assert newer_package.startswith(f"bpfunits_{version}_")
    now = show(container, "MainPID", "ActiveState", "UnitFileState")
    assert now["ActiveState"] == "active" and now["UnitFileState"] == "enabled" and now["MainPID"] != old
    lines = journal(container)[mark:]
    assert any("reconcile (start): 2 hooks, 2 unchanged" in line for line in lines), lines
    assert decisions(lines) == []
    assert xdp_program(link) == running


def test_remove_keeps_configuration_and_chains_and_purge_takes_what_the_package_made(container, link):
    container.run("systemctl", "enable", "--now", "bpfunits")
    running = xdp_program(link)
    container.run("apt", "remove", "-y", "-q", "bpfunits")
    assert show(container, "ActiveState", "LoadState") == {"ActiveState": "inactive", "LoadState": "not-found"}
    assert xdp_program(link) == running
    present = "for p; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then echo \"$p\"; fi; done"
    paths = ["/usr/bin/bpfunits", "/etc/bpfunits/bpfunits.yaml", "/etc/bpfunits.d/ratelimit.unit", "/run/bpfunits.lock",
             "/run/bpfunits/state.json", "/run/bpfunits.d", "/sys/fs/bpf/bpfunits/hooks",
             "/etc/systemd/system/multi-user.target.wants/bpfunits.service"]
    after_remove = container.run("sh", "-c", present, "sh", *paths).stdout.split()
    assert after_remove == paths[1:]
    container.run("apt", "purge", "-y", "-q", "bpfunits")
    after_purge = container.run("sh", "-c", present, "sh", *paths).stdout.split()
    # The units are the admin's, and the chains run on (take them down before: README).
    assert after_purge == ["/etc/bpfunits.d/ratelimit.unit", "/sys/fs/bpf/bpfunits/hooks"]
    assert xdp_program(link) == running


def test_the_sandbox_lets_a_source_unit_compile_and_rates_as_the_readme_says(container, link):
    bcc = (ROOT / "bpf" / "bcc_counter.c").read_text()
    container.sh("mkdir -p /usr/local/lib/bpfunits")
    container.write("/usr/local/lib/bpfunits/bcc_counter.c", bcc)
    container.write("/etc/bpfunits.d/zz-bcc.unit",
                    "[Program]\nSource=/usr/local/lib/bpfunits/bcc_counter.c\n[Attach]\nHook=xdp\nInterfaces=bpfu-demo*\n")
    container.run("systemctl", "start", "bpfunits")
    assert 'Status: "2 hooks, 0 with errors"' in container.run("systemctl", "status", "bpfunits", "--no-pager").stdout
    assert ("bpfu-demo0 xdp", "create applied (+ ratelimit, + connlimit, + filter, + zz-bcc)") in decisions(journal(container))
    assert nothing_to_do(container)
    figure = re.search(r"`systemd-analyze security bpfunits` rates it (\d+\.\d)", (ROOT / "README.md").read_text())
    out = container.run("systemd-analyze", "security", "bpfunits", "--no-pager").stdout
    assert f"Overall exposure level for bpfunits.service: {figure.group(1)} " in out
