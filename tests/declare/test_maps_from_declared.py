"""Declarations (Global=, [Map] entries) with MapsFrom=, on the kernel: a map's entries are declared
by the unit that owns it, a unit taking maps from another keeps its own globals, and neither
entries nor globals go into a map taken from another unit (an error naming the owner)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from bpfunits.reconcile.engine import Result
from bpfunits.state import pins
from bpfunits.sys import bpf
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
BPF = Path(__file__).resolve().parents[2] / "bpf"


@pytest.fixture
def run(reconciler) -> tuple[Path, Callable[[], Result]]:
    return reconciler.units, reconciler.apply


def limiter(pair, extra: str = "") -> str:
    return (f"[Program]\nObject={BPF / 'examples' / 'connlimit.bpf.o'}\nName=xdp_connlimit\n"
            f"Global=default_max_conns=50\n[Attach]\nHook=xdp\nInterfaces={pair.if_a}\n"
            f"[Map]\nEntry=config 0 {{max_conns=4}}\n{extra}")


def companion(extra: str = "", global_: str = "7") -> str:
    return (f"[Program]\nObject={BPF / 'examples' / 'connlimit.bpf.o'}\nName=connlimit_release\n"
            f"MapsFrom=connlimit\nGlobal=default_max_conns={global_}\n"
            f"[Attach]\nHook=tracepoint:sock/inet_sock_set_state\n{extra}")


def max_conns(root) -> int:
    with pins.opened(root.unit_path("connlimit") / "config") as fd:
        value = bpf.map_lookup(fd, struct.pack("<I", 0), 4)
    assert value is not None
    return struct.unpack("<I", value)[0]


def errors(result: Result) -> list[str]:
    return [e for h in result.hooks for e in h.errors] + [e for ev in result.events for e in ev.errors]


def test_owner_declares_entries_and_each_unit_keeps_its_globals(run, veth_pair, bpffs_root):
    units, apply = run
    write(units, "connlimit.unit", limiter(veth_pair))
    write(units, "connlimit-release.unit", companion())
    result = apply()
    assert not result.failed, errors(result)
    assert [(e.unit, e.action, e.outcome) for e in result.events] == [("connlimit-release", "attach", "applied")]
    assert max_conns(bpffs_root) == 4, "the owner's declared entry is in the map both units use"
    assert not bpffs_root.unit_path("connlimit-release").exists(), "the companion has no maps of its own"
    assert not apply().changed

    # The companion's own global (in its own .rodata) changes its program, which is replaced.
    write(units, "connlimit-release.unit", companion(global_="8"))
    result = apply()
    assert not result.failed, errors(result)
    assert [(e.action, e.outcome) for e in result.events] == [("replace", "applied")]
    assert not apply().changed


def test_entries_in_a_map_taken_from_another_unit_are_refused_naming_the_owner(run, veth_pair, bpffs_root):
    units, apply = run
    write(units, "connlimit.unit", limiter(veth_pair))
    write(units, "connlimit-release.unit", companion("[Map]\nEntry=config 0 {max_conns=9}\nPolicy=conns exact\n"))
    result = apply()
    assert result.failed
    (event,) = result.events
    assert event.outcome == "blocked" and not event.running
    message = "\n".join(event.errors)
    assert "Entry=config 0 {max_conns=9}: map config is unit connlimit's (MapsFrom=): declare its entries in " \
           "unit connlimit" in message
    assert "Policy=conns exact: map conns is unit connlimit's (MapsFrom=)" in message
    assert max_conns(bpffs_root) == 4, "the owner's entry stands"


def test_a_global_in_a_data_section_taken_from_another_unit_is_refused_naming_the_owner(run, veth_pair):
    """Two units of one object share its .data map by name: a Global= of the taker would not be in it."""
    units, apply = run
    shapes = f"[Program]\nObject={BPF / 'declared_shapes.bpf.o'}\n{{}}[Attach]\nHook=xdp\nInterfaces={veth_pair.if_a}\n"
    write(units, "shapes.unit", shapes.format("Global=data_verdict=2\n"))
    write(units, "taker.unit", shapes.format("MapsFrom=shapes\nGlobal=verdict=2\nGlobal=data_verdict=2\n")
          + "[Unit]\nAfter=shapes\n")
    result = apply()
    assert [e for h in result.hooks for e in h.errors] == [
        "unit taker: Global= sets a variable of map declared.data, which it takes from unit shapes (MapsFrom=): "
        "declare it in unit shapes"]

    # A global in its own read-only data is the taker's alone: allowed.
    write(units, "taker.unit", shapes.format("MapsFrom=shapes\nGlobal=verdict=2\n") + "[Unit]\nAfter=shapes\n")
    result = apply()
    assert not result.failed, errors(result)
    assert [h.ordered for h in result.hooks] == [("shapes", "taker")]
