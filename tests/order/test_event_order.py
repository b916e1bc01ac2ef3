"""Ordering the units of a cgroup hook (pure logic): their declared order, which units to move
so that the kernel's order matches it, where a new link goes, and the verify warning where the
kernel cannot order them."""

from __future__ import annotations

import pytest

from bpfunits.hooks import eventlink
from bpfunits.hooks.probe import Features
from bpfunits.order.chains import ignored_order
from bpfunits.order.events import neighbour, order_events, out_of_order
from bpfunits.sys import bpf
from bpfunits.units.search import load_units
from tests.unitfiles import write

NEW = Features.assume("6.18.0")
OLD = Features.assume("6.12.0", cgroup_mprog=False)


def cgroup_unit(extra: str = "", cgroup: str = "/sys/fs/cgroup/web", attach: str = "") -> str:
    return f"[Unit]\n{extra}\n[Program]\nObject=a.o\n[Attach]\nHook=cgroup-skb-egress\nCgroup={cgroup}\n{attach}\n"


def units(tmp_path):
    loaded = load_units((tmp_path,))
    assert loaded.errors == []
    return list(loaded.units.values())


def test_units_of_a_cgroup_hook_are_ordered_by_their_relations(tmp_path):
    write(tmp_path, "a.unit", cgroup_unit("After=c"))
    write(tmp_path, "b.unit", cgroup_unit(attach="Position=first"))
    write(tmp_path, "c.unit", cgroup_unit())
    write(tmp_path, "other.unit", cgroup_unit(cgroup="/sys/fs/cgroup/db"))
    write(tmp_path, "tp.unit", "[Program]\nObject=a.o\n[Attach]\nHook=tracepoint:sock/inet_sock_set_state\n")
    ordering = order_events(units(tmp_path))
    assert {h.value: tuple(u.name for u in o) for h, o in ordering.orders.items()} == {
        "cgroup-skb-egress:/sys/fs/cgroup/db": ("other",),
        "cgroup-skb-egress:/sys/fs/cgroup/web": ("b", "c", "a")}
    assert ordering.errors == []


def test_a_cycle_on_a_cgroup_hook_is_that_hooks_error(tmp_path):
    write(tmp_path, "a.unit", cgroup_unit("After=b"))
    write(tmp_path, "b.unit", cgroup_unit("After=a"))
    [error] = order_events(units(tmp_path)).errors
    assert str(error).startswith("cgroup-skb-egress:/sys/fs/cgroup/web: ordering cycle a -> b -> a")


@pytest.mark.parametrize(("declared", "running", "moved"), [
    ("abc", "abc", set()),
    ("abc", "", set()),
    ("ab", "ba", {"a"}),  # one of the two moves; the other keeps its link
    ("abcd", "bcda", {"a"}),
    ("abcd", "dcba", {"a", "b", "c"}),
    ("abc", "ac", set()),  # b is new: placed between them, nothing moves
])
def test_the_fewest_units_move(declared, running, moved):
    assert out_of_order(list(declared), list(running)) == moved


def test_a_new_link_goes_next_to_the_units_in_place():
    declared = ["a", "b", "c"]
    assert neighbour(declared, "b", {"a": 11, "c": 13}) == (False, 11)  # right after a
    assert neighbour(declared, "a", {"b": 12, "c": 13}) == (True, 12)  # right before b
    assert neighbour(declared, "c", {}) == (False, 0)  # last


def test_place_flags():
    assert eventlink.Place(True, 7, 3).flags == bpf.BPF_F_BEFORE | bpf.BPF_F_LINK
    assert eventlink.Place(False, 7, 3).flags == bpf.BPF_F_AFTER | bpf.BPF_F_LINK
    assert eventlink.Place(True, 0, 3).flags == bpf.BPF_F_BEFORE
    assert eventlink.Place(False, 0, 3).flags == 0


def test_ordering_keys_on_a_cgroup_hook_are_ignored_only_where_the_kernel_cannot_order(tmp_path):
    write(tmp_path, "a.unit", cgroup_unit("After=b"))
    write(tmp_path, "b.unit", cgroup_unit())
    assert ignored_order(units(tmp_path), NEW) == []
    assert ignored_order(units(tmp_path), None) == []  # not known (verify without root): no warning
    [warning] = ignored_order(units(tmp_path), OLD)
    assert str(warning) == (
        f"{tmp_path}/a.unit:2: warning: unit a: After= is ignored: this kernel (6.12.0) lacks placing cgroup "
        "links before or after others (BPF_F_BEFORE/AFTER), which ordering the units of a cgroup hook by "
        "After=/Before= needs: it came with Linux 6.16; until then cgroup programs run in attach order")
