"""bpfunits daemon end to end: a real daemon process in a namespace, files dropped and edited,
frames flowing, the kernel changed behind its back, and the daemon killed and restarted."""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.sys import bpf, netns
from bpfunits.cli import main
from bpfunits.hooks.observe import observe
from bpfunits.linker.manifest import read_manifest
from tests.daemon.notifysocket import NotifySocket
from tests.timing import scaled
from tests.traffic import Flow, frame, send_frames
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
REPO = Path(__file__).resolve().parents[2]
BPF = REPO / "bpf"


def unit_text(obj: str, hook: str = "xdp", extra: str = "") -> str:
    return f"[Unit]\n{extra}\n[Program]\nObject={BPF / obj}\n[Attach]\nHook={hook}\nInterfaces=bu*\n"


def drop(folder: Path, name: str, text: str) -> None:
    """Write a unit the way configuration management does: a temp file renamed into place."""
    tmp = folder / f".{name}.tmp"
    write(folder, tmp.name, text)
    tmp.rename(folder / name)


def eventually(check: Callable[[], object], timeout: float, what: str) -> object:
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


class DaemonProcess:
    def __init__(self, pair, units: Path, root, tmp: Path, config: str = "") -> None:
        self.pair, self.units, self.root = pair, units, root
        self.config = tmp / "bpfunits.yaml"
        # The metrics listener on a free port of its own: tests and other daemons run side by side.
        metrics = "" if "metrics_listen" in config else "metrics_listen: 127.0.0.1:0\n"
        self.config.write_text(f"lock_file: {tmp / 'lock'}\nstate_file: {tmp / 'state.json'}\nresync_period: 1\n"
                               f"{metrics}{config}")
        self.log = tmp / f"daemon-{len(list(tmp.glob('daemon-*.log')))}.log"
        self.log.touch()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.notify = NotifySocket()
        env = {**os.environ, "NOTIFY_SOCKET": self.notify.address}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bpfunits", "daemon", "--netns", self.pair.ns_a, "--units-dir", str(self.units),
             "--bpffs-root", str(self.root.path), "--config", str(self.config), "--log-format", "json"],
            cwd=REPO, env=env, stderr=self.log.open("a"), stdout=subprocess.DEVNULL,
        )
        self.notify.wait_for(lambda line: line == "READY=1", timeout=20)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=scaled(10))
        if self.proc:
            self.notify.close()

    def metrics_address(self) -> str:
        """HOST:PORT of its metrics listener, as it logged it."""
        return next(r["metrics_listen"] for r in self.records() if "metrics_listen" in r)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def chain(self, hook: Hook = Hook.XDP, ifindex: int | None = None) -> tuple[str, ...] | None:
        """The unit order bpfunits' program on the hook carries, or None when none is attached."""
        with netns.inside(self.pair.ns_a):
            ours = observe(ifindex or self.pair.ifindex_a, hook, self.root).ours
            if not ours:
                return None
            try:
                manifest = read_manifest(ours[0].prog_id)
            except bpf.BpfError as e:
                if e.errno != errno.ENOENT:
                    raise
                return None  # swapped by the daemon since it was observed: look again
        return tuple(e.unit for e in manifest.components)

    def prog_id(self, hook: Hook = Hook.XDP) -> int | None:
        with netns.inside(self.pair.ns_a):
            ours = observe(self.pair.ifindex_a, hook, self.root).ours
        return ours[0].prog_id if ours else None


@pytest.fixture
def daemon(tmp_path, veth_pair, bpffs_root, bpf_objects) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []
    units = tmp_path / "units"
    units.mkdir()

    def start(config: str = "") -> DaemonProcess:
        d = DaemonProcess(veth_pair, units, bpffs_root, tmp_path, config)
        started.append(d)
        d.start()
        return d

    try:
        yield start
    finally:
        for d in started:
            d.stop(signal.SIGKILL)


def packets(root, unit: str) -> int:
    fd = bpf.obj_get(str(root.unit_path(unit) / "packets"))
    try:
        return struct.unpack("<Q", bpf.map_lookup(fd, struct.pack("<I", 0), 8))[0]
    finally:
        os.close(fd)


def test_dropped_files_attach_in_order_and_removal_detaches(daemon, veth_pair, bpffs_root):
    d = daemon()
    assert d.chain() is None
    drop(d.units, "10-count.unit", unit_text("counter.bpf.o"))
    drop(d.units, "20-drop.unit", unit_text("dropper.bpf.o"))
    drop(d.units, "30-count.unit", unit_text("counter.bpf.o"))
    eventually(lambda: d.chain() == ("10-count", "20-drop", "30-count"), 5, "the chain attached in order")
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(40)])
    # Counters prove the order: the first counter saw all, the dropper stopped them before the last.
    eventually(lambda: packets(bpffs_root, "10-count") == 40, 2, "frames counted")
    assert packets(bpffs_root, "30-count") == 0

    (d.units / "20-drop.unit").unlink()
    eventually(lambda: d.chain() == ("10-count", "30-count"), 2, "the removed unit left the chain")
    for name in ("10-count.unit", "30-count.unit"):
        (d.units / name).unlink()
    eventually(lambda: d.chain() is None, 2, "the hook detached")
    eventually(lambda: not any(bpffs_root.units_path.iterdir()), 2, "the units' maps unpinned")
    decisions = [r["message"] for r in d.records() if r.get("action") in ("create", "replace", "remove")]
    assert any("create applied (+ 10-count, + 20-drop, + 30-count)" in m for m in decisions), decisions
    assert any("remove applied" in m for m in decisions), decisions


def test_reorder_while_frames_flow_loses_nothing_and_no_frame_sees_half_a_chain(daemon, veth_pair, bpffs_root):
    d = daemon()
    drop(d.units, "a.unit", unit_text("counter.bpf.o"))
    drop(d.units, "b.unit", unit_text("counter.bpf.o"))
    eventually(lambda: d.chain() == ("a", "b"), 5, "chain a -> b")
    with Flow(veth_pair.ns_b, veth_pair.if_b, veth_pair.ns_a, veth_pair.if_a) as flow:
        write(d.units, "a.d/order.conf", "[Unit]\nAfter=b\n")
        eventually(lambda: d.chain() == ("b", "a"), 3, "chain b -> a")
        time.sleep(0.2)
        flow.stop()
    # Every frame that arrived ran through a whole chain, old or new: both counters saw each one.
    assert flow.sent > 1000
    assert packets(bpffs_root, "a") == packets(bpffs_root, "b") == flow.arrived == flow.sent


@pytest.mark.matrix
def test_netlink_xdp_removed_by_someone_is_repaired_within_2s(daemon, veth_pair, bpffs_root):
    d = daemon("xdp_backend: netlink\n")
    drop(d.units, "count.unit", unit_text("counter.bpf.o"))
    first = eventually(d.prog_id, 5, "attached")
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a, "xdp", "off"], check=True)
    assert d.prog_id() is None
    started = time.monotonic()
    eventually(lambda: d.chain() == ("count",), 2, "the daemon re-attached the chain")
    assert time.monotonic() - started < scaled(2) and d.prog_id() != first


def test_cls_bpf_filter_deleted_by_someone_is_repaired_within_the_resync_period(daemon, veth_pair, bpffs_root):
    d = daemon("tc_backend: cls_bpf\n")
    drop(d.units, "tc.unit", unit_text("tc_actions.bpf.o", hook="tc-ingress"))
    eventually(lambda: d.chain(Hook.TC_INGRESS) == ("tc",), 5, "attached")
    subprocess.run(["tc", "-n", veth_pair.ns_a, "filter", "del", "dev", veth_pair.if_a, "ingress"], check=True)
    assert d.chain(Hook.TC_INGRESS) is None
    eventually(lambda: d.chain(Hook.TC_INGRESS) == ("tc",), 3, "repaired at the 1 s resync")


def test_interface_created_later_gets_its_chain_within_2s_and_its_pins_go_with_it(daemon, veth_pair, bpffs_root):
    d = daemon()
    drop(d.units, "count.unit", unit_text("counter.bpf.o"))
    eventually(lambda: d.chain() == ("count",), 5, "attached to the first interface")
    new_if, peer = veth_pair.if_a[:-1] + "x", veth_pair.if_a[:-1] + "y"
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "add", new_if, "type", "veth", "peer", "name", peer], check=True)
    started = time.monotonic()
    ifindex = netns.ifindex(new_if, veth_pair.ns_a)
    eventually(lambda: d.chain(Hook.XDP, ifindex) == ("count",), 2, "the new interface got its chain")
    assert time.monotonic() - started < scaled(2)
    # Only the new interfaces' hooks (both ends match bu*) were looked at, not the first one's
    # (issue 12: dirty hooks).
    appeared = eventually(lambda: [r for r in d.records() if r["message"].startswith("reconcile (")
                                   and "appeared" in r["message"]], 2, "the reconcile logged")
    assert sum(r["hooks"] for r in appeared) == 2

    # When it goes away, so do the pins bpfunits kept for it.
    with netns.inside(veth_pair.ns_a):
        pins = bpffs_root.hook_path(ifindex, Hook.XDP).parent
    assert pins.exists()
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "del", new_if], check=True)
    eventually(lambda: not pins.exists(), 2, "its hook pins removed")
    assert d.chain() == ("count",), "the other interface keeps its chain"


def test_killed_daemon_restarts_without_swapping_anything(daemon, veth_pair, bpffs_root):
    d = daemon()
    drop(d.units, "a.unit", unit_text("counter.bpf.o"))
    drop(d.units, "t.unit", unit_text("tc_actions.bpf.o", hook="tc-ingress"))
    eventually(lambda: d.chain() == ("a",) and d.chain(Hook.TC_INGRESS) == ("t",), 5, "both hooks attached")
    # Killed once both are pinned: a kill between attach and pin loses a link (only the
    # process held it), which is no worse than before that first attach.
    d.notify.wait_for(lambda line: line.startswith("STATUS=2 hooks"), 5)
    before = (d.prog_id(Hook.XDP), d.prog_id(Hook.TC_INGRESS))
    d.stop(signal.SIGKILL)
    assert (d.prog_id(Hook.XDP), d.prog_id(Hook.TC_INGRESS)) == before, "the datapath outlives the daemon"

    again = daemon()
    assert (again.prog_id(Hook.XDP), again.prog_id(Hook.TC_INGRESS)) == before
    first = next(r for r in again.records() if r["message"].startswith("reconcile (") and r.get("hooks"))
    assert first["unchanged"] == first["hooks"] == 2, "zero swaps at restart"


def test_a_failing_hook_is_retried_with_backoff_and_status_says_when(daemon, veth_pair, bpffs_root, capsys):
    """Issue 12: a foreign XDP program blocks the chain; the daemon retries after 1, 2, 4 s ...
    and `status` shows how often it failed and when it tries again."""
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a, "xdpgeneric", "obj",
                    str(BPF / "attach_foreign.bpf.o"), "sec", "xdp"], check=True)
    d = daemon()
    drop(d.units, "a.unit", unit_text("counter.bpf.o"))
    retries = eventually(lambda: [r for r in d.records() if r.get("failures", 0) >= 3], 10, "three failures")
    assert retries[0]["retry_in"] > 0 and "next try in" in retries[0]["message"]
    tries = [r for r in d.records() if r["message"].startswith("reconcile: retry")]
    assert len(tries) >= 2, "retried without any event or resync"
    code = main(["status", "--netns", veth_pair.ns_a, "--units-dir", str(d.units), "--bpffs-root",
                 str(bpffs_root.path), "--config", str(d.config), "--json"])
    (xdp,) = [h for h in json.loads(capsys.readouterr().out)["hooks"] if h["hook"] == "xdp"]
    assert code == 1 and xdp["retry"]["failures"] >= 3 and 0 < xdp["retry"]["next_try_in"] <= 300
    assert "foreign XDP program" in xdp["retry"]["error"]


def test_sigterm_leaves_the_datapath_running(daemon, veth_pair, bpffs_root):
    d = daemon()
    drop(d.units, "a.unit", unit_text("counter.bpf.o"))
    eventually(lambda: d.chain() == ("a",), 5, "attached")
    d.stop(signal.SIGTERM)
    assert d.proc.returncode == 0
    assert d.chain() == ("a",)
    assert "STOPPING=1" in d.notify.texts


def errors_logged(d: DaemonProcess, hook: Hook) -> list[str]:
    return [r["message"] for r in d.records() if r.get("level") == "error" and r.get("hook") == hook.value]


def test_bad_units_leave_every_other_hook_as_it_was(daemon, veth_pair, bpffs_root):
    d = daemon()
    drop(d.units, "x.unit", unit_text("counter.bpf.o"))
    drop(d.units, "ti.unit", unit_text("tc_actions.bpf.o", hook="tc-ingress"))
    drop(d.units, "te.unit", unit_text("tc_actions.bpf.o", hook="tc-egress"))
    hooks = (Hook.XDP, Hook.TC_INGRESS, Hook.TC_EGRESS)
    eventually(lambda: [d.chain(h) for h in hooks] == [("x",), ("ti",), ("te",)], 5, "three hooks attached")
    before = {h: d.prog_id(h) for h in hooks}

    # A verifier rejection on xdp and a cycle on tc-egress, while tc-ingress gets a good change.
    drop(d.units, "bad.unit", unit_text("invalid.bpf.o", extra="After=x"))
    drop(d.units, "c1.unit", unit_text("tc_actions.bpf.o", hook="tc-egress", extra="Before=c2"))
    drop(d.units, "c2.unit", unit_text("tc_actions.bpf.o", hook="tc-egress", extra="Before=c1"))
    drop(d.units, "ti2.unit", unit_text("tc_actions.bpf.o", hook="tc-ingress", extra="After=ti"))
    eventually(lambda: d.chain(Hook.TC_INGRESS) == ("ti", "ti2"), 5, "tc-ingress took its change")
    eventually(lambda: errors_logged(d, Hook.XDP) and errors_logged(d, Hook.TC_EGRESS), 5, "both errors logged")
    assert "invalid access to packet" in errors_logged(d, Hook.XDP)[-1], "the verifier's own words"
    assert "ordering cycle" in errors_logged(d, Hook.TC_EGRESS)[-1]
    assert (d.prog_id(Hook.XDP), d.prog_id(Hook.TC_EGRESS)) == (before[Hook.XDP], before[Hook.TC_EGRESS])

    # A missing object on tc-ingress, while xdp gets a good change (and the broken units go).
    for name in ("bad.unit", "c1.unit", "c2.unit"):
        (d.units / name).unlink()
    ingress = d.prog_id(Hook.TC_INGRESS)
    drop(d.units, "ghost.unit", unit_text("nonexistent.bpf.o", hook="tc-ingress"))
    drop(d.units, "x2.unit", unit_text("counter.bpf.o", extra="After=x"))
    eventually(lambda: d.chain(Hook.XDP) == ("x", "x2"), 5, "xdp took its change")
    eventually(lambda: any("nonexistent.bpf.o" in m for m in errors_logged(d, Hook.TC_INGRESS)), 5, "error logged")
    assert (d.prog_id(Hook.TC_INGRESS), d.prog_id(Hook.TC_EGRESS)) == (ingress, before[Hook.TC_EGRESS])
    assert d.proc.poll() is None


def test_foreign_xdp_program_stays_untouched(daemon, veth_pair, bpffs_root):
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a, "xdpgeneric", "obj",
                    str(BPF / "counter.bpf.o"), "sec", "xdp"], check=True)
    with netns.inside(veth_pair.ns_a):
        foreign = observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs
    d = daemon()
    drop(d.units, "x.unit", unit_text("counter.bpf.o"))
    drop(d.units, "t.unit", unit_text("tc_actions.bpf.o", hook="tc-ingress"))
    eventually(lambda: d.chain(Hook.TC_INGRESS) == ("t",), 5, "the other hook attached")
    eventually(lambda: any("foreign XDP program" in m for m in errors_logged(d, Hook.XDP)), 5, "refusal logged")
    # Through a SIGHUP and two resyncs (1 s here).
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(scaled(2.5))
    with netns.inside(veth_pair.ns_a):
        assert observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs == foreign
