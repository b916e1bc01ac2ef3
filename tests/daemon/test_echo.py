"""The daemon's own XDP changes do not come back as triggers, even when the listing that shows one
arrives after the next reconcile."""

from __future__ import annotations

from bpfunits.daemon.echo import REMEMBERED, OwnXdp
from bpfunits.daemon.trigger import Trigger


def xdp(interface: str, *programs: int) -> Trigger:
    return Trigger("xdp", interface, interface=interface, xdp_progs=frozenset(programs))


def test_what_the_last_reconcile_left_is_an_echo_and_anything_else_is_not():
    own = OwnXdp()
    own.remember({"a": frozenset({7})})
    assert own.is_echo(xdp("a", 7))
    assert not own.is_echo(xdp("a", 8)) and not own.is_echo(xdp("a")) and not own.is_echo(xdp("b", 7))


def test_a_listing_taken_between_two_quick_reconciles_is_an_echo():
    own = OwnXdp()
    own.remember({"a": frozenset({7})})
    own.remember({"a": frozenset({8}), "b": frozenset()})
    assert own.is_echo(xdp("a", 7)), "the first reconcile's program, seen after the second"
    assert own.is_echo(xdp("a", 8)) and own.is_echo(xdp("b"))


def test_only_the_latest_states_are_remembered():
    own = OwnXdp()
    for prog_id in range(1, REMEMBERED + 2):
        own.remember({"a": frozenset({prog_id})})
    assert not own.is_echo(xdp("a", 1)) and own.is_echo(xdp("a", REMEMBERED + 1))
