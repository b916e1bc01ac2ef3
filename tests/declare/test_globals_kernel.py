"""Global= on the kernel: frames through a veth show each kind of data section's declared value in effect."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from bpfunits.cli import main
from bpfunits.state.bpffs import folder_name
from bpfunits.sys import bpf
from tests.traffic import Receiver, frame, send_frames
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
OBJ = Path(__file__).resolve().parents[2] / "bpf" / "declared_shapes.bpf.o"
FRAMES = 20


def through_xdp(pair, n: int) -> int:
    """Send `n` test frames from B into A's XDP hook; how many arrived (waiting only until they stop)."""
    with Receiver(pair.ns_a, pair.if_a) as rx:
        send_frames(pair.ns_b, pair.if_b, [frame(i) for i in range(n)])
        rx.settle(quiet=0.3)
        return rx.stop()


def apply(capsys, pair, units: Path, root, command: str = "apply") -> dict:
    code = main([command, "--netns", pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(root.path), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def shapes_unit(pair, *globals_: str) -> str:
    lines = "".join(f"Global={g}\n" for g in globals_)
    return f"[Program]\nObject={OBJ}\n{lines}[Attach]\nHook=xdp\nInterfaces={pair.if_a}\n"


@pytest.mark.matrix
def test_globals_of_every_section_set_before_load(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "shapes.unit", shapes_unit(veth_pair))
    apply(capsys, veth_pair, units, bpffs_root)
    assert through_xdp(veth_pair, FRAMES) == FRAMES, "every verdict defaults to pass"
    write(units, "shapes.unit", shapes_unit(veth_pair, "verdict=1"))
    planned = apply(capsys, veth_pair, units, bpffs_root, "plan")["hooks"][0]
    assert planned["changed"] == ["shapes"] and "unit shapes: ~ global verdict 2 -> 1" in planned["reasons"]
    # One section at a time drops: .rodata (frozen), .data, .bss, a custom .data.* section. .data and
    # .bss are the unit's state, pinned across reloads: the one before is declared back to pass.
    names = ("verdict", "data_verdict", "bss_verdict", "custom_verdict")
    for before, name in zip((None, *names), names, strict=False):
        write(units, "shapes.unit", shapes_unit(veth_pair, f"{name}=1", *([f"{before}=2"] if before else [])))
        doc = apply(capsys, veth_pair, units, bpffs_root)
        assert doc["hooks"][0]["outcome"] == "applied", f"a changed {name} reloads the unit and relinks"
        assert through_xdp(veth_pair, FRAMES) == 0, f"{name}=1 (XDP_DROP) drops"
    write(units, "shapes.unit", shapes_unit(veth_pair, "custom_verdict=2"))
    reasons = apply(capsys, veth_pair, units, bpffs_root)["hooks"][0]["reasons"]
    assert "unit shapes: ~ global custom_verdict 1 -> 2" in reasons
    assert through_xdp(veth_pair, FRAMES) == FRAMES, "custom_verdict=2 (XDP_PASS) passes"


def test_per_cpu_and_struct_entries(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    text = shapes_unit(veth_pair) + ("[Map]\nEntry=per_cpu 1 0x2a\n"
                                     "Entry=shapes 7 {u16=0x1234 inner={nport=443} mac=02:00:00:00:00:01 name=eth0}\n")
    write(units, "shapes.unit", text)
    doc = apply(capsys, veth_pair, units, bpffs_root)
    # An array's keys always exist: its declared value replaces the zeros.
    assert sorted((e["map"], e["change"], e["found"]) for e in doc["entries"]) == [
        ("per_cpu", "~", "0x0"), ("shapes", "+", None)]
    assert apply(capsys, veth_pair, units, bpffs_root)["entries"] == []
    fd = bpf.obj_get(str(bpffs_root.unit_path("shapes") / folder_name("per_cpu")))
    try:
        values = bpf.map_lookup_percpu(fd, struct.pack("<I", 1), 8)
    finally:
        os.close(fd)
    assert values == [struct.pack("<Q", 42)] * bpf.possible_cpus(), "every CPU holds the value"


def test_verify_load_runs_the_verifier_with_the_declared_globals(tmp_path, capsys, veth_pair, bpf_objects):
    write(tmp_path, "shapes.unit", shapes_unit(veth_pair, "verdict=1", "custom_limit=9", 'greeting="yo"'))
    code = main(["verify", "--load", "--units-dir", str(tmp_path), "--interfaces", veth_pair.if_a])
    out = capsys.readouterr().out
    assert code == 0 and out.strip().endswith("1 units valid, 0 errors, 0 warnings"), out
