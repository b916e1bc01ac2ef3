"""Units on event hooks, one kind after another on the real kernel: attached through a pinned
bpf_link, observed running, repaired after someone else detached them, and detached when the
unit goes. A kind the kernel lacks (here: kprobes, fentry/fexit) is that unit's clear error."""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from bpfunits.btf.kernel import kernel_func_id
from bpfunits.btf.types import BtfError
from bpfunits.cli import main
from bpfunits.config import load_config
from bpfunits.hooks import eventlink, probe
from bpfunits.hooks.events import parse_event_hook
from bpfunits.linker.manifest import read_manifest
from bpfunits.reconcile.engine import Result, reconcile
from bpfunits.reconcile.node import Node
from bpfunits.state import pins
from bpfunits.sys import bpf, netns
from tests.fixtures.netns import ADDR_A, ADDR_B
from tests.timing import scaled
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
BPF = Path(__file__).resolve().parents[2] / "bpf"
CGROUP2_MAGIC = 0x63677270
TARGET_C = """
#include <stdlib.h>
__attribute__((noinline)) int bpfunits_target(int x) { __asm__ volatile(""); return x + 1; }
int main(int argc, char **argv) { int n = atoi(argv[1]), s = 0; for (int i = 0; i < n; i++) s = bpfunits_target(s); return s == n ? 0 : 1; }
"""


@dataclass
class Setup:
    units: Path
    root: object
    apply: Callable[..., Result]
    node: Node | None = None  # kept from one reconcile to the next, as the daemon does; else one each


@pytest.fixture
def setup(tmp_path, veth_pair, bpffs_root) -> Iterator[Setup]:
    units = tmp_path / "units"
    units.mkdir()
    (tmp_path / "bpfunits.yaml").write_text(f"lock_file: {tmp_path / 'lock'}\nbpffs_root: {bpffs_root.path}\n")
    config = load_config(tmp_path / "bpfunits.yaml").override(units_dirs=[units])

    def apply(*, plan: bool = False) -> Result:
        with netns.inside(veth_pair.ns_a):
            return reconcile(config, apply=not plan, node=made.node or Node())

    made = Setup(units, bpffs_root, apply)
    try:
        yield made
    finally:
        for f in units.iterdir():
            f.unlink()
        apply()
        if made.node is not None:
            made.node.close()


def hits(root, unit: str) -> int:
    with pins.opened(root.unit_path(unit) / "hits") as fd:
        value = bpf.map_lookup(fd, struct.pack("<I", 0), 8)
    assert value is not None
    return struct.unpack("<Q", value)[0]


def event_unit(name: str, hook: str, extra: str = "") -> str:
    return f"[Program]\nObject={BPF / 'events.bpf.o'}\nName={name}\n[Attach]\nHook={hook}\n{extra}"


def getppid(n: int = 5) -> None:
    for _ in range(n):
        os.getppid()


def getpid(n: int = 5) -> None:
    for _ in range(n):
        os.getpid()  # a system call each time: glibc caches the pid no more (2.25+)


def syscall_function(name: str) -> str:
    """The kernel function of system call `name` as the kernel's BTF names it: __do_sys_NAME,
    of which __x64_sys_NAME is an alias without BTF of its own, or __x64_sys_NAME where that is
    the function."""
    for function in (f"__do_sys_{name}", f"__x64_sys_{name}"):
        with suppress(BtfError):
            kernel_func_id(function)
            return function
    raise AssertionError(f"no function of system call {name} in the kernel's BTF")


@pytest.fixture
def target_binary(tmp_path) -> Path:
    source = tmp_path / "target.c"
    source.write_text(TARGET_C)
    binary = tmp_path / "bpfunits-target"
    subprocess.run(["clang", "-O1", "-o", str(binary), str(source)], check=True)  # scripts/setup-host.sh has it
    return binary


@pytest.fixture
def cgroup(tmp_path) -> Iterator[Path]:
    """A cgroup (v2) made for the test, and removed after it; the hierarchy is mounted for the
    test where the host has none mounted."""
    base = Path("/sys/fs/cgroup")
    mounted = None
    if _fs_magic(base) != CGROUP2_MAGIC:
        mounted = base / f"bpfunits-test-{secrets.token_hex(3)}"
        try:
            mounted.mkdir()
        except OSError:  # no tmpfs there (a VM's bare sysfs): a folder of the test's
            mounted = tmp_path / "cgroup2"
            mounted.mkdir()
        subprocess.run(["mount", "-t", "cgroup2", "none", str(mounted)], check=True)
        base = mounted
    folder = base / f"bpfunits-test-{secrets.token_hex(3)}"
    folder.mkdir()
    try:
        yield folder
    finally:
        folder.rmdir()
        if mounted is not None:
            subprocess.run(["umount", str(mounted)], check=True)
            mounted.rmdir()


def _fs_magic(path: Path) -> int:
    buf = ctypes.create_string_buffer(120)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.statfs(os.fsencode(path), buf) == 0
    return struct.unpack_from("<q", buf.raw, 0)[0]


def received_in_cgroup(cgroup: Path, veth_pair, datagrams: int) -> None:
    """A process in `cgroup` (in namespace a) receives UDP datagrams sent from namespace b."""
    script = (f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('{ADDR_A}', 9000)); "
              f"s.settimeout(5); print('ready', flush=True); [s.recv(8) for _ in range({datagrams})]")
    receiver = subprocess.Popen(["nsenter", f"--net=/run/netns/{veth_pair.ns_a}", "sh", "-c",
                                 f"echo $$ > {cgroup}/cgroup.procs && exec python3 -c \"{script}\""],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None and receiver.stdout.readline() == "ready\n"
        with veth_pair.inside_b():
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sender:
            for _ in range(datagrams):
                sender.sendto(b"x", (ADDR_A, 9000))
        assert receiver.wait(timeout=10) == 0
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()


def in_cgroup(cgroup: Path, veth_pair, datagrams: int) -> None:
    """Send UDP datagrams to namespace b from a process in `cgroup` (in namespace a)."""
    script = (f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              f"[s.sendto(b'x', ('{ADDR_B}', 9)) for _ in range({datagrams})]")
    subprocess.run(["nsenter", f"--net=/run/netns/{veth_pair.ns_a}", "sh", "-c",
                    f"echo $$ > {cgroup}/cgroup.procs && exec python3 -c \"{script}\""], check=True)


def refused_here(setup: Setup, unit: str, hook: str) -> bool:
    """Whether this kernel lacks what the hook needs; then the unit is blocked, with the reason
    as its error, and nothing is attached."""
    reason = eventlink.unavailable(parse_event_hook(hook.split("\n", maxsplit=1)[0], hook.partition("Cgroup=")[2].strip() or None))
    if reason is None:
        return False
    [event] = setup.apply().events
    assert (event.action, event.outcome, event.errors) == ("blocked", "blocked", (f"unit {unit}: {reason}",))
    assert not eventlink.unit_events_path(setup.root, unit).exists()
    return True


def lifecycle(setup: Setup, unit: str, text: str, trigger: Callable[[], None], detach_foreign) -> None:
    """Attach, observe it run, repair after a foreign detach, detach by removing the unit."""
    write(setup.units, f"{unit}.unit", text)
    if refused_here(setup, unit, text.partition("Hook=")[2]):
        return
    planned = setup.apply(plan=True)
    assert [(e.unit, e.action, e.outcome) for e in planned.events] == [(unit, "attach", "planned")]
    result = setup.apply()
    [event] = result.events
    assert (event.action, event.outcome, event.errors) == ("attach", "applied", ())
    assert event.prog_id and event.link_id
    manifest = read_manifest(event.prog_id)  # bound to the program, as a chain's is
    assert manifest is not None and (manifest.owner, manifest.version) == (str(setup.root.path), "event")
    assert [(e.unit, e.mode) for e in manifest.components] == [(unit, "alone")]
    before = hits(setup.root, unit)
    trigger()
    assert hits(setup.root, unit) > before

    again = setup.apply()  # observed as it is: nothing to do
    assert [(e.action, e.outcome, e.prog_id, e.link_id) for e in again.events] == [
        ("unchanged", "unchanged", event.prog_id, event.link_id)]

    detach_foreign(setup, unit)
    repaired = setup.apply()
    [fixed] = repaired.events
    assert fixed.outcome == "applied" and fixed.link_id != event.link_id
    before = hits(setup.root, unit)
    trigger()
    assert hits(setup.root, unit) > before

    with pins.opened(setup.root.unit_path(unit) / "hits") as hits_fd:
        (setup.units / f"{unit}.unit").unlink()
        removed = setup.apply()
        assert [(e.unit, e.action, e.outcome) for e in removed.events] == [(unit, "remove", "applied")]
        assert not eventlink.unit_events_path(setup.root, unit).exists()
        assert stops_running(lambda: struct.unpack("<Q", bpf.map_lookup(hits_fd, struct.pack("<I", 0), 8))[0],
                             trigger)


def stops_running(count: Callable[[], int], trigger: Callable[[], None]) -> bool:
    """Whether triggering the hook soon counts no more hits. A link the kernel cannot detach
    (perf, raw tracepoint and tracing links) goes with its pin's last reference, which bpffs drops
    only after an RCU grace period (`free_inode`): natively a few ms, seconds under TCG."""
    deadline = time.monotonic() + scaled(5)
    while True:
        before = count()
        trigger()
        if count() == before:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def unpin(setup: Setup, unit: str) -> None:
    """Someone removes the link's pin: with it goes the link's last reference."""
    [pin] = eventlink.unit_events_path(setup.root, unit).iterdir()
    pin.unlink()


def link_detach(setup: Setup, unit: str) -> None:
    """Someone detaches the link (BPF_LINK_DETACH): it stays pinned, defunct."""
    [pin] = eventlink.unit_events_path(setup.root, unit).iterdir()
    with pins.opened(pin) as fd:
        bpf.link_detach(fd)


@pytest.mark.matrix
def test_tracepoint(setup):
    lifecycle(setup, "tp", event_unit("tp_getppid", "tracepoint:syscalls/sys_enter_getppid"), getppid, unpin)


def test_raw_tracepoint(setup):
    lifecycle(setup, "rawtp", event_unit("raw_sys_enter", "raw_tracepoint:sys_enter"), getppid, unpin)


@pytest.mark.parametrize("kind", ["uprobe", "uretprobe"])
def test_uprobe_on_a_binary_built_for_the_test(setup, target_binary, kind):
    run = lambda: subprocess.run([str(target_binary), "3"], check=True)  # noqa: E731
    text = event_unit(f"{kind}_hit", f"{kind}:{target_binary}:bpfunits_target")
    lifecycle(setup, kind, text, run, unpin)


@pytest.mark.parametrize(("kind", "program"), [
    pytest.param("cgroup-skb-egress", "cgroup_egress", marks=pytest.mark.matrix),
    ("cgroup-skb-ingress", "cgroup_ingress"),
    ("cgroup-sock-create", "cgroup_sock_create"),
])
def test_cgroup_hooks_on_a_cgroup_made_for_the_test(setup, cgroup, veth_pair, kind, program):
    text = event_unit(program, kind, f"Cgroup={cgroup}\n")
    if kind == "cgroup-skb-ingress":
        trigger = lambda: received_in_cgroup(cgroup, veth_pair, 3)  # noqa: E731
    else:
        trigger = lambda: in_cgroup(cgroup, veth_pair, 3)  # noqa: E731
    lifecycle(setup, program.replace("_", "-"), text, trigger, link_detach)


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.matrix) for k in ("kprobe", "kretprobe")])
def test_kprobe(setup, kind):
    """Where the kernel has kprobe events (Debian's do), as every kind; this host's has none."""
    lifecycle(setup, kind, event_unit(f"{kind}_getppid", f"{kind}:__x64_sys_getppid"), getppid, unpin)


def test_a_kind_the_kernel_lacks_is_the_units_clear_error(setup):
    if probe.features().has(probe.KPROBE_EVENTS):
        pytest.skip("this kernel has kprobe events (this project's host has none)")
    kind = "kprobe"
    write(setup.units, f"{kind}.unit", event_unit(f"{kind}_getppid", f"{kind}:__x64_sys_getppid"))
    [event] = setup.apply().events
    assert (event.action, event.outcome) == ("blocked", "blocked")
    assert event.errors == (
        f"unit {kind}: {kind}:__x64_sys_getppid: this kernel ({os.uname().release}) lacks kprobe events "
        "(CONFIG_KPROBE_EVENTS) (no /sys/bus/event_source/devices/kprobe), which units on kprobe hooks needs: "
        "it came with Linux 4.17",)


def refuses_tracing(setup: Setup, unit: str, hook: str) -> bool:
    """Whether this kernel refuses tracing programs (this host's: EPERM); then the unit is
    blocked with that as its clear error, and nothing attached."""
    if probe.features().has(probe.TRACING_PROGS):
        return False
    [event] = setup.apply().events
    assert (event.action, event.outcome) == ("blocked", "blocked")
    assert event.errors[0].startswith(
        f"unit {unit}: {hook}: this kernel ({os.uname().release}) lacks BPF_PROG_TYPE_TRACING "
        "(fentry/fexit) permitted (BPF_PROG_LOAD: Operation not permitted")
    assert not eventlink.unit_events_path(setup.root, unit).exists()
    return True


@pytest.mark.parametrize(("kind", "program"), [
    pytest.param("fentry", "fentry_getppid", marks=pytest.mark.matrix),
    pytest.param("fexit", "fexit_hit", marks=pytest.mark.matrix),
])
def test_fentry_and_fexit(setup, kind, program):
    """As every kind where the kernel permits tracing programs; the hook's function decides, not
    the program's section (fentry/__x64_sys_getppid, fexit). The program is kept from one
    reconcile to the next as the daemon keeps it, so the repair attaches it again (which kernels
    before 5.13 refuse: it is loaded anew)."""
    hook = f"{kind}:{syscall_function('getppid')}"
    text = event_unit(program, hook)
    write(setup.units, f"{kind}.unit", text)
    if refuses_tracing(setup, kind, hook):
        return
    setup.node = Node()
    lifecycle(setup, kind, text, getppid, unpin)


@pytest.mark.matrix
def test_fentry_on_a_missing_then_a_changed_function(setup):
    """A function the kernel's BTF lacks is the unit's clear error; another function is a new
    attachment in place of the old one."""
    missing = "fentry:bpfunits_no_such_function"
    write(setup.units, "fe.unit", event_unit("fentry_getppid", missing))
    if refuses_tracing(setup, "fe", missing):
        return
    [event] = setup.apply().events
    assert (event.action, event.outcome, event.errors) == ("blocked", "blocked", (
        f"unit fe: {missing}: no function bpfunits_no_such_function in the kernel's BTF (/sys/kernel/btf/vmlinux): "
        "it is not a kernel function, is inlined, or is a module's",))
    assert not eventlink.unit_events_path(setup.root, "fe").exists()

    write(setup.units, "fe.unit", event_unit("fentry_getppid", f"fentry:{syscall_function('getppid')}"))
    [first] = setup.apply().events
    assert (first.action, first.outcome, first.errors) == ("attach", "applied", ())
    write(setup.units, "fe.unit", event_unit("fentry_getppid", f"fentry:{syscall_function('getpid')}"))
    [changed] = setup.apply(plan=True).events
    assert (changed.action, changed.outcome, changed.link_id) == ("replace", "planned", first.link_id)
    [moved] = setup.apply().events
    assert (moved.action, moved.outcome, moved.errors) == ("replace", "applied", ())
    assert moved.link_id != first.link_id
    assert len(list(eventlink.unit_events_path(setup.root, "fe").iterdir())) == 1
    assert stops_running(lambda: hits(setup.root, "fe"), getppid)  # the old link goes after a grace period
    before = hits(setup.root, "fe")
    getpid()
    assert hits(setup.root, "fe") >= before + 5


def test_plan_and_status_show_event_units(setup, tmp_path, veth_pair, capsys):
    write(setup.units, "tp.unit", event_unit("tp_getppid", "tracepoint:syscalls/sys_enter_getppid"))
    if refused_here(setup, "tp", "tracepoint:syscalls/sys_enter_getppid"):
        return
    cli = ["--config", str(tmp_path / "bpfunits.yaml"), "--units-dir", str(setup.units), "--netns", veth_pair.ns_a]
    assert main(["plan", *cli]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "tracepoint:syscalls/sys_enter_getppid tp: attach (planned)", "  note: not running", "1 planned"]
    assert main(["apply", *cli, "--json"]) == 0
    [applied] = json.loads(capsys.readouterr().out)["events"]
    assert (applied["unit"], applied["action"], applied["outcome"]) == ("tp", "attach", "applied")
    stats = bpf.enable_stats()  # run counts, while the fd is open
    try:
        getppid(7)
        assert main(["status", *cli, "--json"]) == 0
        [status] = json.loads(capsys.readouterr().out)["events"]
        assert (status["prog_id"], status["link_id"]) == (applied["prog_id"], applied["link_id"])
        assert status["run_count"] >= 7
        assert main(["status", *cli]) == 0
        line = capsys.readouterr().out.splitlines()[-1]
        assert line.startswith(f"tracepoint:syscalls/sys_enter_getppid  tp  (prog {applied['prog_id']} link "
                               f"{applied['link_id']}, ran ")
    finally:
        os.close(stats)


def order_unit(mark: int, extra: str, cgroup: Path, maps_from: str = "x") -> str:
    """A unit on cgroup-skb-egress noting when it ran in slot `mark` of the maps it shares (those
    of unit x, which has them pinned)."""
    return (f"[Unit]\n{extra}\n[Program]\nObject={BPF / 'cgroup_order.bpf.o'}\nGlobal=mark={mark}\n"
            f"{maps_from and 'MapsFrom=' + maps_from}\n[Attach]\nHook=cgroup-skb-egress\nCgroup={cgroup}\n")


def kernel_order(cgroup: Path, results: Result) -> list[str]:
    """The units in the order the kernel runs their programs on the cgroup's egress hook."""
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ids = bpf.cgroup_query(fd, bpf.AttachType.CGROUP_INET_EGRESS).prog_ids
    finally:
        os.close(fd)
    unit_of = {e.prog_id: e.unit for e in results.events}
    return [unit_of.get(prog_id, "foreign") for prog_id in ids]


def ran_in(setup: Setup, cgroup: Path, veth_pair, units: dict[str, int]) -> list[str]:
    """Send a datagram from the cgroup; the units in the order their programs ran for it."""
    with pins.opened(setup.root.unit_path("x") / "order_at") as at, \
            pins.opened(setup.root.unit_path("x") / "order_seq") as seq:
        for fd, slots in ((at, 4), (seq, 1)):
            for slot in range(slots):
                bpf.map_update(fd, struct.pack("<I", slot), bytes(8))
        in_cgroup(cgroup, veth_pair, 1)
        when = {u: struct.unpack("<Q", bpf.map_lookup(at, struct.pack("<I", m), 8) or bytes(8))[0]
                for u, m in units.items()}
    assert all(when.values()), when
    return sorted(units, key=when.__getitem__)


def test_units_on_a_cgroup_hook_run_in_their_declared_order(setup, cgroup, veth_pair, capsys, tmp_path):
    if not probe.features().has(probe.CGROUP_MPROG):
        pytest.skip(probe.features().missing(probe.CGROUP_MPROG))
    foreign_prog = probe._prog(probe._returns(1), bpf.ProgType.CGROUP_SKB)
    cgroup_fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    foreign = bpf.link_create(foreign_prog, cgroup_fd, bpf.AttachType.CGROUP_INET_EGRESS)
    try:
        foreign_id = bpf.prog_info(foreign_prog).id
        write(setup.units, "x.unit", order_unit(0, "", cgroup, ""))
        write(setup.units, "y.unit", order_unit(1, "Before=x", cgroup))
        cli = ["--config", str(tmp_path / "bpfunits.yaml"), "--units-dir", str(setup.units),
               "--netns", veth_pair.ns_a]
        assert main(["plan", *cli]) == 0
        planned = capsys.readouterr().out.splitlines()
        assert "  order on the hook: y -> x" in planned
        assert f"  foreign programs on the hook, left in place: id {foreign_id}" in planned

        first = setup.apply()
        assert [(e.unit, e.action, e.outcome, e.order, e.foreign) for e in first.events] == [
            ("x", "attach", "applied", ("y", "x"), (foreign_id,)),
            ("y", "attach", "applied", ("y", "x"), (foreign_id,))]
        assert kernel_order(cgroup, first) == ["foreign", "y", "x"]
        assert ran_in(setup, cgroup, veth_pair, {"x": 0, "y": 1}) == ["y", "x"]
        again = setup.apply()
        assert [(e.unit, e.action) for e in again.events] == [("x", "unchanged"), ("y", "unchanged")]
        assert main(["status", *cli]) == 0
        status = capsys.readouterr().out.splitlines()
        assert [line.split("  ")[1] for line in status if ", 2 of 2 in order" in line] == ["x"]
        assert [line.split("  ")[1] for line in status if ", 1 of 2 in order" in line] == ["y"]
        assert status.count(f"    foreign programs on the hook, left in place: id {foreign_id}") == 2

        # The relation reversed: one unit moves (a new link in its place), the other stays.
        links = {e.unit: e.link_id for e in first.events}
        write(setup.units, "y.unit", order_unit(1, "", cgroup))
        write(setup.units, "x.unit", order_unit(0, "Before=y", cgroup, ""))
        assert main(["plan", *cli]) == 0
        assert capsys.readouterr().out.splitlines() == [
            f"cgroup-skb-egress:{cgroup} x: move (planned)",
            "  note: it runs out of its declared order (the kernel runs y, x; declared: x, y)",
            "  order on the hook: x -> y", f"  foreign programs on the hook, left in place: id {foreign_id}",
            "1 unchanged, 1 planned"]
        reversed_ = setup.apply()
        assert [(e.unit, e.action, e.outcome) for e in reversed_.events] == [
            ("x", "move", "applied"), ("y", "unchanged", "unchanged")]
        assert reversed_.events[0].link_id != links["x"] and reversed_.events[1].link_id == links["y"]
        assert kernel_order(cgroup, reversed_) == ["foreign", "x", "y"]
        assert ran_in(setup, cgroup, veth_pair, {"x": 0, "y": 1}) == ["x", "y"]

        # A new program for y (its slot changes): swapped in its link, which keeps its id and place.
        write(setup.units, "y.unit", order_unit(2, "", cgroup))
        swapped = setup.apply()
        [x, y] = swapped.events
        assert (y.action, y.outcome, y.link_id) == ("replace", "applied", links["y"])
        assert y.prog_id != reversed_.events[1].prog_id and x.action == "unchanged"
        assert kernel_order(cgroup, swapped) == ["foreign", "x", "y"]
        assert ran_in(setup, cgroup, veth_pair, {"x": 0, "y": 2}) == ["x", "y"]
    finally:
        os.close(foreign)
        os.close(foreign_prog)
        os.close(cgroup_fd)


@pytest.mark.matrix
def test_where_the_kernel_cannot_order_cgroup_units_attach_in_turn(setup, cgroup, veth_pair, monkeypatch):
    """As on a kernel before 6.16 (the probe's answer says so here; the matrix's kernels lack it):
    ordering keys are ignored, links are appended as their units come, and a new program is
    still swapped into its link."""
    real = probe.features()
    absent = probe.Probed(probe.CGROUP_MPROG, False, "assumed absent")
    monkeypatch.setattr(probe, "features", lambda: probe.Features(real.kernel, {**real.known,
                                                                           probe.CGROUP_MPROG: absent}, real.probe))
    write(setup.units, "x.unit", order_unit(0, "", cgroup, ""))
    write(setup.units, "y.unit", order_unit(1, "Before=x", cgroup))
    first = setup.apply()
    assert [(e.unit, e.action, e.outcome, e.order) for e in first.events] == [
        ("x", "attach", "applied", ()), ("y", "attach", "applied", ())]
    assert kernel_order(cgroup, first) == ["x", "y"]  # attach order, Before= ignored
    assert ran_in(setup, cgroup, veth_pair, {"x": 0, "y": 1}) == ["x", "y"]
    write(setup.units, "x.unit", order_unit(2, "", cgroup, ""))
    [x, y] = setup.apply().events
    assert (x.action, x.outcome, x.link_id, y.action) == ("replace", "applied", first.events[0].link_id, "unchanged")
    assert x.prog_id != first.events[0].prog_id
    assert kernel_order(cgroup, setup.apply(plan=True)) == ["x", "y"]


def test_a_cycle_on_a_cgroup_hook_blocks_its_units(setup, cgroup):
    if not probe.features().has(probe.CGROUP_MPROG):
        pytest.skip(probe.features().missing(probe.CGROUP_MPROG))
    write(setup.units, "x.unit", order_unit(0, "After=y", cgroup, ""))
    write(setup.units, "y.unit", order_unit(1, "After=x", cgroup))
    events = setup.apply().events
    assert [(e.unit, e.action, e.outcome, e.link_id) for e in events] == [
        ("x", "blocked", "blocked", None), ("y", "blocked", "blocked", None)]
    assert events[0].errors[0].startswith(f"cgroup-skb-egress:{cgroup}: ordering cycle x -> y -> x")
    assert kernel_order(cgroup, setup.apply()) == []
