"""Global= on the kernel: frames through a veth show each kind of data section's declared value in effect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bpfunits.cli import main
from tests.traffic import through_hook
from bpfunits.hooks import Hook
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
OBJ = Path(__file__).resolve().parents[2] / "bpf" / "declared_shapes.bpf.o"
FRAMES = 20


def apply(capsys, pair, units: Path, root) -> dict:
    code = main(["apply", "--netns", pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(root.path), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def shapes_unit(pair, *globals_: str) -> str:
    lines = "".join(f"Global={g}\n" for g in globals_)
    return f"[Program]\nObject={OBJ}\n{lines}[Attach]\nHook=xdp\nInterfaces={pair.if_a}\n"


def test_globals_of_every_section_set_before_load(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "shapes.unit", shapes_unit(veth_pair))
    apply(capsys, veth_pair, units, bpffs_root)
    assert through_hook(veth_pair, Hook.XDP, FRAMES) == FRAMES, "every verdict defaults to pass"
    # One section at a time: .rodata (frozen), .data, .bss, a custom .data.* section.
    for name in ("verdict", "data_verdict", "bss_verdict", "custom_verdict"):
        write(units, "shapes.unit", shapes_unit(veth_pair, f"{name}=1"))
        doc = apply(capsys, veth_pair, units, bpffs_root)
        assert doc["hooks"][0]["outcome"] == "applied", f"a changed {name} reloads the unit and relinks"
        assert through_hook(veth_pair, Hook.XDP, FRAMES) == 0, f"{name}=1 (XDP_DROP) drops"
        # .data and .bss are the unit's state, pinned across reloads: setting the value back is declared too.
        write(units, "shapes.unit", shapes_unit(veth_pair, f"{name}=2"))
        apply(capsys, veth_pair, units, bpffs_root)
        assert through_hook(veth_pair, Hook.XDP, FRAMES) == FRAMES, f"{name}=2 (XDP_PASS) passes"
