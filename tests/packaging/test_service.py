"""packaging/systemd: the service unit is valid, and the daemon works inside the limits it sets."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bpfunits.config import defaults
from tests.daemon.notifysocket import NotifySocket
from tests.packaging import servicefile
from tests.packaging.demo import DemoNetns
from tests.packaging.servicefile import SERVICE, SYSTEMD_DIR
from tests.timing import scaled

ROOT = Path(__file__).resolve().parents[2]
BPFUNITS = ROOT / ".venv" / "bin" / "bpfunits"
EXAMPLES = ROOT / "units.example.d"
LEGACY_BACKENDS = "xdp_backend: netlink\ntc_backend: cls_bpf\n"
# Capability bits (linux/capability.h).
CAP_BITS = {"net_admin": 12, "sys_admin": 21, "bpf": 39, "perfmon": 38}


def test_service_verifies(tmp_path):
    # systemd-analyze verify checks that ExecStart's program exists, and /usr/bin/bpfunits is not
    # installed here: a copy runs the venv's bpfunits, the same entry point the package installs.
    text = SERVICE.read_text()
    assert "ExecStart=/usr/bin/bpfunits daemon\n" in text
    (tmp_path / "bpfunits.service").write_text(text.replace("ExecStart=/usr/bin/bpfunits", f"ExecStart={BPFUNITS}"))
    run = subprocess.run(["systemd-analyze", "verify", "bpfunits.service"], cwd=tmp_path, capture_output=True, text=True)
    assert (run.returncode, run.stderr) == (0, "")


def test_service_settings():
    s = servicefile.settings()
    assert s["Type"] == ["notify"]
    assert s["ExecReload"] == ["/bin/sh -c 'kill -HUP \"$MAINPID\"'"]
    assert s["Restart"] == ["on-failure"]
    assert s["WatchdogSec"]
    assert sorted(servicefile.capabilities()) == ["net_admin", "sys_admin"]
    assert s["AssertPathIsMountPoint"] == ["/sys/fs/bpf"]


def test_service_documents_and_allows_the_metrics_listener():
    assert f"http://{defaults().metrics_listen}/metrics" in SERVICE.read_text()
    assert {"AF_INET", "AF_INET6"} <= set(servicefile.words("RestrictAddressFamilies"))


def test_systemd_mounts_bpffs_itself_and_refuses_a_mount_unit_for_it(tmp_path):
    # Why the service asserts bpffs instead of shipping sys-fs-bpf.mount (as guides for older
    # systemd do): systemd mounts this API file system at boot and rejects such a unit.
    (tmp_path / "sys-fs-bpf.mount").write_text("[Mount]\nWhat=bpf\nWhere=/sys/fs/bpf\nType=bpf\n")
    run = subprocess.run(["systemd-analyze", "verify", "sys-fs-bpf.mount"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode != 0
    assert "Cannot create mount unit for API file system /sys/fs/bpf" in run.stderr


def test_service_exposure_is_low():
    # systemd's own sandboxing score, 0 (locked down) to 10, at most the figure the README gives
    # (and says why); the threshold is in tenths.
    figure = re.search(r"`systemd-analyze security bpfunits` rates it (\d+)\.(\d)", (ROOT / "README.md").read_text())
    assert figure is not None and int(figure.group(1)) * 10 + int(figure.group(2)) <= 32
    run = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--threshold={figure.group(1)}{figure.group(2)}", str(SERVICE)],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stdout[-300:]


@pytest.mark.root
def test_tmpfiles_makes_the_lock_file_and_runtime_folder(tmp_path):
    subprocess.run(["systemd-tmpfiles", f"--root={tmp_path}", "--create", str(SYSTEMD_DIR / "bpfunits.tmpfiles")], check=True)
    lock = tmp_path / "run" / "bpfunits.lock"
    assert lock.is_file() and lock.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "run" / "bpfunits.d").is_dir()
    # The sandbox makes writable exactly what tmpfiles made.
    assert "-/run/bpfunits.lock" in servicefile.words("ReadWritePaths")


def confined(capabilities: list[str]) -> list[str]:
    """setpriv as systemd applies CapabilityBoundingSet= and NoNewPrivileges= to a root service."""
    caps = ",".join(["-all"] + [f"+{c}" for c in capabilities])
    return ["setpriv", f"--bounding-set={caps}", "--inh-caps=-all", "--no-new-privs"]


def bpfunits_args(command: str, bpffs_root, config: Path, units: tuple[Path, ...] = (EXAMPLES,)) -> list[str]:
    folders = [a for folder in units for a in ("--units-dir", str(folder))]
    return [str(BPFUNITS), command, *folders, "--bpffs-root", str(bpffs_root.path), "--config", str(config)]


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bpfunits.yaml"
    path.write_text(text or "{}\n")
    return path


@contextmanager
def daemon(argv: list[str], tmp_path: Path, pid_of=lambda p: p.pid) -> Iterator[tuple[subprocess.Popen, int, NotifySocket]]:
    """The daemon started as systemd would (NOTIFY_SOCKET, WATCHDOG_USEC); SIGTERMed afterwards.
    `pid_of` finds the daemon's pid when a tracer stands between."""
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=notify.address, WATCHDOG_USEC="2000000")
    env.pop("WATCHDOG_PID", None)
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    pid = None
    try:
        try:
            notify.wait_for(lambda line: line == "READY=1", timeout=scaled(60))
        except AssertionError:
            raise AssertionError(f"no READY=1; the daemon logged:\n{log.read_text()}") from None
        pid = pid_of(proc)
        yield proc, pid, notify
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(scaled(20)) == 0
        notify.wait_for(lambda line: line == "STOPPING=1")
    finally:
        if proc.poll() is None:
            os.kill(pid or proc.pid, signal.SIGKILL)
            proc.wait()
        notify.close()


def effective_capabilities(pid: int) -> set[str]:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(re.search(r"^CapEff:\s*([0-9a-f]+)$", status, re.M).group(1), 16)
    return {name for name, bit in CAP_BITS.items() if mask >> bit & 1} | ({"other"} if mask & ~sum(1 << b for b in CAP_BITS.values()) else set())


def nothing_to_apply(netns: DemoNetns, bpffs_root, config: Path, units: tuple[Path, ...] = (EXAMPLES,)) -> bool:
    argv = netns.enter() + bpfunits_args("apply", bpffs_root, config, units) + ["--detailed-exitcode"]
    run = subprocess.run(argv, capture_output=True, text=True)
    return run.returncode == 0


@pytest.mark.kernel
@pytest.mark.parametrize("backends", ["", LEGACY_BACKENDS], ids=["link-tcx", "netlink-clsbpf"])
def test_daemon_runs_with_exactly_the_service_capabilities(demo_netns, bpffs_root, bpf_objects, tmp_path, backends):
    config = write_config(tmp_path, backends)
    argv = demo_netns.enter() + confined(servicefile.capabilities()) + bpfunits_args("daemon", bpffs_root, config)
    started = time.monotonic()
    with daemon(argv, tmp_path) as (proc, pid, notify):
        ready = time.monotonic() - started
        assert effective_capabilities(pid) == set(servicefile.capabilities())
        # The daemon attached every example chain: a full-privileged apply finds nothing to do.
        assert nothing_to_apply(demo_netns, bpffs_root, config)
        assert re.fullmatch(r"STATUS=.*4 hooks.*", notify.wait_for(lambda text: text.startswith("STATUS=")))
        notify.wait_for(lambda line: line == "WATCHDOG=1")
        # ExecReload: SIGHUP reconciles again, and finds the chains as it left them.
        before = len(notify.texts)
        os.kill(pid, signal.SIGHUP)
        notify.wait_for(lambda text: text.startswith("STATUS=") and text in notify.texts[before:])
    print(f"READY=1 after {ready:.2f} s under {servicefile.capabilities()}")


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("backends", "dropped"),
    [("", "sys_admin"), (LEGACY_BACKENDS, "net_admin")],
    ids=["without-sys_admin", "without-net_admin-on-netlink"],
)
def test_each_capability_is_needed(demo_netns, bpffs_root, bpf_objects, tmp_path, backends, dropped):
    config = write_config(tmp_path, backends)
    fewer = [c for c in servicefile.capabilities() if c != dropped]
    # Even with CAP_BPF and CAP_PERFMON added in place of the dropped one.
    argv = demo_netns.enter() + confined(fewer + ["bpf", "perfmon"]) + bpfunits_args("apply", bpffs_root, config)
    run = subprocess.run(argv, capture_output=True, text=True)
    assert run.returncode == 1
    assert "Operation not permitted" in run.stdout + run.stderr


def _strace_child(proc: subprocess.Popen) -> int:
    """The traced program's pid: strace's one child (nsenter and setpriv exec, so it is the daemon)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (scripts/setup-host.sh)")
def test_daemon_stays_inside_the_syscall_filter_and_address_families(demo_netns, bpffs_root, bpf_objects, tmp_path):
    config = write_config(tmp_path, "")
    # The examples, and a Source= unit, so bcc's compile and load are traced too.
    bcc_units = tmp_path / "bcc.d"
    bcc_units.mkdir()
    (bcc_units / "zz-bcc.unit").write_text(
        f"[Program]\nSource={bpf_objects / 'bcc_counter.c'}\n[Attach]\nHook=xdp\nInterfaces=bpfu-demo*\n"
    )
    trace = tmp_path / "strace.out"
    argv = (demo_netns.enter() + ["strace", "-f", "-qq", "-o", str(trace)] + confined(servicefile.capabilities())
            + bpfunits_args("daemon", bpffs_root, config, (EXAMPLES, bcc_units)))
    with daemon(argv, tmp_path, pid_of=_strace_child) as (proc, pid, notify):
        assert nothing_to_apply(demo_netns, bpffs_root, config, (EXAMPLES, bcc_units))
        before = len(notify.texts)
        os.kill(pid, signal.SIGHUP)
        notify.wait_for(lambda text: text.startswith("STATUS=") and text in notify.texts[before:])
    text = trace.read_text()
    lines = [line for line in text.splitlines() if not line.split(None, 1)[1].startswith(("+++", "---"))]
    called = {m.group(1) for line in lines if (m := re.match(r"\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", line))}
    # setpriv's calls before it execs bpfunits count too, so this is stricter than systemd.
    allowed = frozenset().union(*(servicefile.syscall_set(n) for n in servicefile.words("SystemCallFilter")))
    assert "bpf" in called
    assert called - allowed == set()
    families = set(re.findall(r"socket(?:pair)?\((AF_[A-Z0-9]+)", text))
    assert families <= set(servicefile.words("RestrictAddressFamilies")), families
    # RestrictNamespaces=net: only network namespaces are entered or made.
    namespaces = set(re.findall(r"(?:unshare|setns)\([^)]*?(CLONE_NEW[A-Z]+)", text))
    assert namespaces <= {"CLONE_NEWNET"}, namespaces
