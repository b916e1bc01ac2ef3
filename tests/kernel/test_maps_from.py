"""Maps shared between units (MapsFrom=), on the real kernel: a unit's program binds another
unit's maps by name, those maps stay while used, and a shape mismatch changes nothing."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.load import mappins
from bpfunits.reconcile.engine import Result
from bpfunits.sys import bpf, netns
from bpfunits.state import pins
from tests.traffic import frame, send_frames
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
BPF = Path(__file__).resolve().parents[2] / "bpf"


def unit(obj: str, hook: str, interfaces: str, extra: str = "") -> str:
    return (f"[Program]\nObject={BPF / obj}\n{extra}\n[Attach]\nHook={hook}\nInterfaces={interfaces}\n")


@pytest.fixture
def setup(reconciler) -> tuple[Path, Callable[[], Result]]:
    return reconciler.units, reconciler.apply


def packets(root, unit: str) -> int:
    with pins.opened(root.unit_path(unit) / "packets") as fd:
        value = bpf.map_lookup(fd, struct.pack("<I", 0), 8)
        assert value is not None
        return struct.unpack("<Q", value)[0]


def test_two_units_count_into_one_map_and_the_owners_maps_stay_while_used(setup, veth_pair, bpffs_root):
    units, run = setup
    write(units, "owner.unit", unit("counter.bpf.o", "xdp", veth_pair.if_a))
    write(units, "mapless.unit", unit("dropper.bpf.o", "xdp", "nomatch"))  # no map of that name: the next unit's
    write(units, "user.unit", unit("shared_counter.bpf.o", "tc-ingress", veth_pair.if_a, "MapsFrom=mapless owner"))
    result = run()
    assert not result.failed, [h.errors for h in result.hooks]
    # The user's map is the owner's, pinned in the owner's folder only.
    assert not (bpffs_root.unit_path("user") / "packets").exists()
    owner_map = mappins.pinned(bpffs_root.unit_path("owner") / "packets")
    assert owner_map is not None
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(20)])
    counted = packets(bpffs_root, "owner")
    assert counted >= 40 and counted % 2 == 0  # each frame: once on XDP, once on tc ingress

    # The owner leaves the datapath; its maps stay, for the user, which still counts into them.
    write(units, "owner.unit", unit("counter.bpf.o", "xdp", "nomatch"))
    result = run()
    assert not result.failed, [h.errors for h in result.hooks]
    assert mappins.pinned(bpffs_root.unit_path("owner") / "packets").id == owner_map.id
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(20)])
    assert packets(bpffs_root, "owner") >= counted + 20

    # Once no unit uses them, they go.
    (units / "user.unit").unlink()
    assert not run().failed
    assert not bpffs_root.unit_path("owner").exists()


@pytest.mark.matrix
def test_a_shape_mismatch_names_both_units_and_changes_nothing(setup, veth_pair, bpffs_root):
    units, run = setup
    write(units, "owner.unit", unit("counter.bpf.o", "xdp", veth_pair.if_a))
    assert not run().failed
    owner_map = mappins.pinned(bpffs_root.unit_path("owner") / "packets")
    write(units, "user.unit", unit("shared_mismatch.bpf.o", "tc-ingress", veth_pair.if_a, "MapsFrom=owner"))
    result = run()
    errors = [e for h in result.hooks for e in h.errors]
    assert errors == ["unit user: map packets taken from unit owner (MapsFrom=) has another shape: "
                      "max entries 4 here, 1 in unit owner"]
    assert [h.outcome.value for h in result.hooks if h.key.hook is Hook.TC_INGRESS] == ["blocked"]
    assert mappins.pinned(bpffs_root.unit_path("owner") / "packets").id == owner_map.id
    assert not bpffs_root.unit_path("user").exists()
    with netns.inside(veth_pair.ns_a):
        assert not (bpffs_root.hook_path(veth_pair.ifindex_a, Hook.TC_INGRESS) / "link").exists()


def test_maps_from_a_unit_that_does_not_exist_is_that_units_error(setup, veth_pair):
    units, run = setup
    write(units, "user.unit", unit("shared_counter.bpf.o", "tc-ingress", veth_pair.if_a, "MapsFrom=ghost"))
    result = run()
    assert [e for h in result.hooks for e in h.errors] == [
        "unit user: MapsFrom= names unit ghost, which is not a valid unit"]


def test_template_instances_each_have_their_own_state(setup, veth_pair, bpffs_root):
    """One template pair (a counter and its companion taking its maps) serves two interfaces."""
    units, run = setup
    second = "bu-tenant2"  # another veth, both ends in the test's namespace (gone with it)
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "add", second, "type", "veth", "peer", "name", "bu-tenant2p"],
                   check=True)
    templates = units.parent / "templates"
    write(templates, "count@.unit", unit("counter.bpf.o", "xdp", "%i"))
    write(templates, "tccount@.unit", unit("shared_counter.bpf.o", "tc-ingress", "%i", "MapsFrom=count@%i"))
    for interface in (veth_pair.if_a, second):
        for template in ("count@", "tccount@"):
            (units / f"{template}{interface}.unit").symlink_to(templates / f"{template}.unit")
    result = run()
    assert not result.failed, [h.errors for h in result.hooks]
    assert sorted((h.key.interface, h.key.hook.value, h.ordered) for h in result.hooks) == sorted(
        (interface, hook, (f"{template}{interface}",))
        for interface in (veth_pair.if_a, second) for hook, template in (("xdp", "count@"), ("tc-ingress", "tccount@")))
    maps = {i: mappins.pinned(bpffs_root.unit_path(f"count@{i}") / "packets") for i in (veth_pair.if_a, second)}
    assert all(maps.values()) and maps[veth_pair.if_a].id != maps[second].id
    assert not any(bpffs_root.unit_path(f"tccount@{i}").exists() for i in maps)
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(10)])
    counted = packets(bpffs_root, f"count@{veth_pair.if_a}")
    assert counted >= 20 and counted % 2 == 0
