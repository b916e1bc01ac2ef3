"""Issue 12: one event costs what it touches. A reconciler that remembers each hook (the daemon's
Node) looks only at the hooks an event makes dirty: an interface's, a unit's, one hook changed by
someone else, and at a resync only those whose programs are not what it left there. A failing
hook is retried with exponential backoff, without holding up the others."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bpfunits.config import Config, load_config
from bpfunits.hooks import Hook
from bpfunits.hooks import attach as attaching
from bpfunits.hooks import xdp
from bpfunits.sys import bpf, netns
from bpfunits.order.graph import HookKey
from bpfunits.reconcile.engine import Outcome, Result, reconcile
from bpfunits.reconcile.memory import RETRY_FIRST, Changes
from bpfunits.reconcile.node import Node
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
BPF = Path(__file__).resolve().parents[2] / "bpf"
XDP_PASS = bytes.fromhex("b700000002000000" "9500000000000000")
FILES = Changes(files=True)  # what a unit file event says: read them all, compare every hook


def unit(obj: str, interfaces: str, hook: str = "xdp", extra: str = "") -> str:
    return f"[Unit]\n{extra}\n[Program]\nObject={BPF / obj}\n[Attach]\nHook={hook}\nInterfaces={interfaces}\n"


@dataclass
class Rig:
    ns: str
    names: tuple[str, ...]  # three interfaces of the namespace: veth_pair's and two more
    units: Path
    config: Config
    node: Node

    def run(self, changes: Changes = FILES) -> Result:
        with netns.inside(self.ns):
            return reconcile(self.config, apply=True, node=self.node, changes=changes)

    def looked_at(self, result: Result) -> set[tuple[str, str]]:
        return {(h.key.interface, h.key.hook.value) for h in result.hooks}

    def ifindex(self, name: str) -> int:
        return netns.ifindex(name, self.ns)


@pytest.fixture
def rig(tmp_path, veth_pair, bpffs_root, bpf_objects) -> Iterator[Rig]:
    tag = veth_pair.if_a[2:-1]
    more = (f"bu{tag}m", f"bu{tag}n")
    for name, peer in zip(more, (f"bq{tag}m", f"bq{tag}n"), strict=True):
        subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "add", name, "type", "veth", "peer", "name", peer],
                       check=True)
    units = tmp_path / "units"
    units.mkdir()
    (tmp_path / "bpfunits.yaml").write_text(f"lock_file: {tmp_path / 'lock'}\nbpffs_root: {bpffs_root.path}\n")
    config = load_config(tmp_path / "bpfunits.yaml").override(units_dirs=[units])
    node = Node()
    try:
        yield Rig(veth_pair.ns_a, (veth_pair.if_a, *more), units, config, node)
    finally:
        node.close()


def test_a_full_reconcile_comes_first_then_nothing_to_do_looks_at_nothing(rig):
    write(rig.units, "a.unit", unit("counter.bpf.o", "bu*"))
    first = rig.run(FILES)  # no memory yet: every hook
    assert {(i, "xdp") for i in rig.names} <= rig.looked_at(first)
    assert all(h.outcome is Outcome.APPLIED for h in first.hooks if h.key.hook is Hook.XDP)
    again = rig.run(FILES)
    assert again.hooks == [] and again.total == 3


def test_an_interface_event_looks_at_that_interface_only(rig):
    write(rig.units, "a.unit", unit("counter.bpf.o", "bu*"))
    rig.run()
    one = rig.names[1]
    result = rig.run(Changes(interfaces=frozenset({one})))
    assert rig.looked_at(result) == {(one, "xdp")}, "its other hooks run nothing and want nothing"
    assert result.hooks[0].outcome is Outcome.UNCHANGED


def test_a_new_interface_gets_its_chain_without_looking_at_the_others(rig):
    write(rig.units, "a.unit", unit("counter.bpf.o", "bu*"))
    rig.run()
    tag = rig.names[0][2:-1]
    new = f"bu{tag}o"
    subprocess.run(["ip", "-n", rig.ns, "link", "add", new, "type", "veth", "peer", "name", f"bq{tag}o"], check=True)
    result = rig.run(Changes(interfaces=frozenset({new})))
    assert rig.looked_at(result) == {(new, "xdp")}
    assert result.hooks[0].outcome is Outcome.APPLIED


def test_a_lost_interface_event_is_made_up_for_by_the_next_reconcile(rig):
    write(rig.units, "a.unit", unit("counter.bpf.o", "bu*"))
    write(rig.units, "b.unit", unit("counter.bpf.o", rig.names[0]))
    rig.run()
    tag = rig.names[0][2:-1]
    new = f"bu{tag}o"
    subprocess.run(["ip", "-n", rig.ns, "link", "add", new, "type", "veth", "peer", "name", f"bq{tag}o"], check=True)
    # Every reconcile compares the interfaces with those of the last one: a unit file event too.
    write(rig.units, "b.unit", unit("counter.bpf.o", rig.names[0], extra="After=a"))
    edited = rig.run(FILES)
    assert rig.looked_at(edited) == {(rig.names[0], "xdp"), (new, "xdp")}
    assert {h.key.interface: h.outcome for h in edited.hooks}[new] is Outcome.APPLIED
    assert edited.ordered == 3, "the edited unit's interface, the new one and its peer"


def test_an_event_orders_only_the_interfaces_it_touches(rig):
    """What an event costs grows with what it touches, not with the node: the units are ordered
    on the interfaces of the units whose files changed, of the event, of due retries."""
    write(rig.units, "a.unit", unit("counter.bpf.o", "bu*"))
    write(rig.units, "b.unit", unit("counter.bpf.o", rig.names[0]))
    assert rig.run().ordered >= 3  # the first reconcile: every interface
    write(rig.units, "b.unit", unit("counter.bpf.o", rig.names[0], extra="After=a"))
    assert rig.run(FILES).ordered == 1
    assert rig.run(Changes(interfaces=frozenset({rig.names[1]}))).ordered == 1
    assert rig.run(Changes(kernel=True, files=True)).ordered == 0, "a resync with nothing changed orders nothing"
    write(rig.units, "a.unit", unit("counter.bpf.o", "bu*", extra="After=b"))
    assert rig.run(FILES).ordered == 3, "a glob unit: all its interfaces"


def test_a_unit_edit_looks_at_the_hooks_of_that_unit_only(rig):
    first, second = rig.names[0], rig.names[1]
    write(rig.units, "a.unit", unit("counter.bpf.o", first))
    write(rig.units, "b.unit", unit("counter.bpf.o", f"{first} {second}"))
    write(rig.units, "t.unit", unit("tc_actions.bpf.o", "bu*", hook="tc-ingress"))
    rig.run()
    write(rig.units, "a.unit", unit("counter.bpf.o", first, extra="After=b"))
    result = rig.run(FILES)
    assert rig.looked_at(result) == {(first, "xdp")}
    assert result.hooks[0].outcome is Outcome.APPLIED and result.hooks[0].plan.moved
    # A unit that moves to another interface: where it was and where it goes.
    write(rig.units, "a.unit", unit("counter.bpf.o", rig.names[2]))
    result = rig.run(FILES)
    assert rig.looked_at(result) == {(first, "xdp"), (rig.names[2], "xdp")}


def test_an_object_rewritten_in_place_makes_its_hooks_dirty(rig, tmp_path):
    obj = tmp_path / "mine.bpf.o"
    obj.write_bytes((BPF / "counter.bpf.o").read_bytes())
    write(rig.units, "a.unit", f"[Program]\nObject={obj}\n[Attach]\nHook=xdp\nInterfaces={rig.names[0]}\n")
    write(rig.units, "t.unit", unit("tc_actions.bpf.o", "bu*", hook="tc-ingress"))
    rig.run()
    obj.write_bytes((BPF / "dropper.bpf.o").read_bytes())  # no unit file changed
    result = rig.run(FILES)
    assert rig.looked_at(result) == {(rig.names[0], "xdp")}
    assert result.hooks[0].outcome is Outcome.APPLIED and result.hooks[0].plan.changed == ("a",)


def test_a_resync_compares_programs_and_repairs_only_what_drifted(rig, bpffs_root):
    write(rig.units, "a.unit", unit("counter.bpf.o", "bu*"))
    rig.run()
    assert rig.run(Changes(kernel=True)).hooks == [], "nothing drifted: nothing looked at"
    # Someone removes bpfunits' chain from one hook (its pins with it).
    victim = rig.names[2]
    with netns.inside(rig.ns):
        attaching.detach(rig.ifindex(victim), Hook.XDP, bpffs_root)
    result = rig.run(Changes(kernel=True))
    assert rig.looked_at(result) == {(victim, "xdp")}
    assert result.hooks[0].outcome is Outcome.APPLIED


def test_someone_elses_program_counts_only_where_units_are(rig):
    write(rig.units, "a.unit", unit("counter.bpf.o", rig.names[0]))
    rig.run()
    fd = bpf.prog_load(bpf.ProgType.XDP, XDP_PASS)
    try:
        with netns.inside(rig.ns):
            xdp.netlink_set(rig.ifindex(rig.names[1]), fd, xdp.XDP_FLAGS_SKB_MODE)
    finally:
        os.close(fd)
    assert rig.run(Changes(kernel=True)).hooks == [], "a hook no unit wants: nothing to do there"
    write(rig.units, "b.unit", unit("counter.bpf.o", rig.names[1]))
    result = rig.run(Changes(kernel=True))
    assert rig.looked_at(result) == {(rig.names[1], "xdp")}
    assert result.hooks[0].outcome is Outcome.BLOCKED and result.hooks[0].foreign
    assert rig.run(Changes(kernel=True)).hooks == [], "remembered, and waiting for its retry"


def test_a_failing_hook_is_retried_with_backoff_and_never_holds_up_the_others(rig):
    blocked = rig.names[1]
    fd = bpf.prog_load(bpf.ProgType.XDP, XDP_PASS)  # someone else's program: bpfunits leaves it
    try:
        with netns.inside(rig.ns):
            xdp.netlink_set(rig.ifindex(blocked), fd, xdp.XDP_FLAGS_SKB_MODE)
    finally:
        os.close(fd)
    write(rig.units, "a.unit", unit("counter.bpf.o", "bu*"))
    start = time.monotonic()
    first = rig.run()
    assert {h.key.interface for h in first.hooks if h.outcome is Outcome.APPLIED} == set(rig.names) - {blocked}
    retry = first.retries[HookKey(blocked, Hook.XDP)]
    assert retry.failures == 1 and start + RETRY_FIRST <= retry.at <= time.monotonic() + RETRY_FIRST
    assert "foreign XDP program" in retry.error and first.next_retry() == retry.at

    # A resync before it is due leaves it alone; an edit elsewhere is applied at once.
    assert rig.run(Changes(kernel=True)).hooks == []
    write(rig.units, "b.unit", unit("counter.bpf.o", rig.names[0]))
    edited = rig.run(Changes(kernel=True))
    assert rig.looked_at(edited) == {(rig.names[0], "xdp")}

    # Due: tried again, and the wait doubles.
    time.sleep(max(0.0, retry.at - time.monotonic()))
    again = rig.run(Changes())
    assert rig.looked_at(again) == {(blocked, "xdp")}
    second = again.retries[HookKey(blocked, Hook.XDP)]
    assert second.failures == 2 and second.at - retry.at >= 2 * RETRY_FIRST - 0.5

    # Once it succeeds, it is no longer retried.
    with netns.inside(rig.ns):
        xdp.netlink_set(rig.ifindex(blocked), -1, xdp.XDP_FLAGS_SKB_MODE)
    time.sleep(max(0.0, second.at - time.monotonic()))
    fixed = rig.run(Changes())
    assert [h.outcome for h in fixed.hooks] == [Outcome.APPLIED] and fixed.retries == {}


def test_a_broken_unit_file_makes_the_hooks_it_runs_on_dirty_and_keeps_them(rig):
    write(rig.units, "a.unit", unit("counter.bpf.o", rig.names[0]))
    write(rig.units, "t.unit", unit("tc_actions.bpf.o", "bu*", hook="tc-ingress"))
    rig.run()
    write(rig.units, "a.unit", unit("counter.bpf.o", rig.names[0]).replace("Hook=xdp", "Hook=xpd"))
    result = rig.run(FILES)
    assert rig.looked_at(result) == {(rig.names[0], "xdp")}
    assert result.hooks[0].outcome is Outcome.BLOCKED, "the hook keeps its chain"
    write(rig.units, "a.unit", unit("counter.bpf.o", rig.names[0]))
    fixed = rig.run(FILES)
    assert rig.looked_at(fixed) == {(rig.names[0], "xdp")} and fixed.hooks[0].outcome is Outcome.UNCHANGED


def test_an_interface_event_reads_no_unit_file_and_orders_only_its_hooks(rig):
    """What one event costs is what it touches: the unit files as last read, ordered on the
    named interface only. An edit meanwhile waits for its own event (or the resync)."""
    write(rig.units, "a.unit", unit("counter.bpf.o", "bu*"))
    rig.run()
    write(rig.units, "b.unit", unit("counter.bpf.o", rig.names[0]))  # its file event comes later
    result = rig.run(Changes(interfaces=frozenset({rig.names[1]})))
    assert rig.looked_at(result) == {(rig.names[1], "xdp")} and result.hooks[0].outcome is Outcome.UNCHANGED
    edited = rig.run(FILES)
    assert rig.looked_at(edited) == {(rig.names[0], "xdp")} and edited.hooks[0].plan.added == ("b",)
    assert rig.run(Changes(kernel=True, files=True)).hooks == []


def test_a_glob_units_chains_are_linked_once_and_each_has_maps_of_its_own(rig, monkeypatch):
    from bpfunits.linker import linker
    from bpfunits.linker.counters import read_counters

    assembled = []
    real = linker.assemble
    monkeypatch.setattr(linker, "assemble", lambda *a, **k: assembled.append(1) or real(*a, **k))
    write(rig.units, "a.unit", unit("counter.bpf.o", "bu*"))
    write(rig.units, "b.unit", unit("dropper.bpf.o", "bu*", extra="After=a"))
    result = rig.run(FILES)
    applied = [h for h in result.hooks if h.key.hook is Hook.XDP and h.outcome is Outcome.APPLIED]
    assert len(applied) == 3 and len(assembled) == 1  # three interfaces, one link
    fds = [bpf.prog_get_fd_by_id(h.prog_id) for h in applied]
    try:
        maps = [set(bpf.prog_info(fd).map_ids) for fd in fds]
    finally:
        for fd in fds:
            os.close(fd)
    assert all(read_counters(h.prog_id) is not None for h in applied)
    shared = maps[0] & maps[1] & maps[2]  # the units' own maps
    assert all(len(m - shared) == 2 for m in maps) and len(set().union(*maps) - shared) == 6
