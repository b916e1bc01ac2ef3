"""Issue 11 #5 (the unit-file half): a NUL byte in a path value and a unit name too long for its pin
path are errors of that unit, which `verify` reports with file and line, and which stay with that
unit in a reconcile while the others apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bpfunits.cli import main
from tests.unitfiles import write

BPF = Path(__file__).resolve().parents[2] / "bpf"
LONG = "a." * 70 + "b"  # 141 characters, 281 bytes as a bpffs folder name ('.' is written %2e)


def ini(obj: str, interfaces: str = "veth0") -> str:
    return f"[Unit]\nDescription=x\n[Program]\nObject={obj}\n[Attach]\nHook=xdp\nInterfaces={interfaces}\n"


def verify(capsys, folder: Path) -> tuple[int, list[str]]:
    code = main(["verify", "--units-dir", str(folder), "--interfaces", "veth0"])
    return code, capsys.readouterr().out.replace(f"{folder}/", "").splitlines()


def test_one_bad_input_nul_in_object_fails_verify(tmp_path, capsys):
    write(tmp_path, "n.unit", ini("/usr/lib/x\0y.bpf.o"))
    write(tmp_path, "y.yaml", 'program: {source: "s\\0.c"}\nattach: {hook: xdp, interfaces: [veth0]}\n')
    write(tmp_path, "d.unit", ini("/d.o"))
    write(tmp_path, "d.d/10-nul.conf", "[Program]\nObject=/d\0.o\n")
    assert verify(capsys, tmp_path) == (1, [
        "d.d/10-nul.conf:2: error: unit d: Object=/d\\0.o: must not contain a NUL byte",
        "n.unit:4: error: unit n: Object=/usr/lib/x\\0y.bpf.o: must not contain a NUL byte",
        "y.yaml:1: error: unit y: Source=s\\0.c: must not contain a NUL byte",
        "0 units valid, 3 errors, 0 warnings",
    ])


def test_one_bad_input_nul_in_interfaces_and_define_fails_verify(tmp_path, capsys):
    write(tmp_path, "i.unit", ini("/i.o", "veth\0"))
    write(tmp_path, "s.unit", "[Program]\nSource=/s.c\nDefine=A=\0\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    code, out = verify(capsys, tmp_path)
    assert code == 1 and out[-1] == "0 units valid, 2 errors, 0 warnings"


def test_one_bad_input_unit_name_too_long_for_its_pin_path_fails_verify(tmp_path, capsys):
    write(tmp_path, f"{LONG}.unit", ini("/x.o"))
    write(tmp_path, "ok.unit", ini(BPF / "counter.bpf.o"))
    assert verify(capsys, tmp_path) == (1, [
        f"{LONG}.unit: error: unit {LONG}: unit name too long: its pin folder name would be 281 bytes, bpffs allows 255",
        "1 units valid, 1 errors, 0 warnings",
    ])


@pytest.mark.kernel
def test_one_bad_input_stays_with_its_unit_in_apply(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "good.unit", ini(BPF / "counter.bpf.o", veth_pair.if_a))
    write(units, "nul.unit", ini(f"{BPF}/counter\0.bpf.o", veth_pair.if_a))
    write(units, f"{LONG}.unit", ini(BPF / "counter.bpf.o", veth_pair.if_a))
    code = main(["apply", "--netns", veth_pair.ns_a, "--units-dir", str(units), "--bpffs-root", str(bpffs_root.path),
                 "--json", "--detailed-exitcode"])
    doc = json.loads(capsys.readouterr().out)
    hook = next(h for h in doc["hooks"] if (h["interface"], h["hook"]) == (veth_pair.if_a, "xdp"))
    assert code == 1, "errors are reported"
    assert hook["outcome"] == "applied" and [c["unit"] for c in hook["desired"]] == ["good"]
    assert {d["unit"] for d in doc["diagnostics"]} == {"nul", LONG}
