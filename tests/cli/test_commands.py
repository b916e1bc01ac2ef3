import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpfunits.cli import main
from tests.unitfiles import ini_unit, write

EXAMPLES = Path(__file__).resolve().parents[2] / "units.example.d"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_clean_examples(capsys):
    code, out, err = run(capsys, "verify", "--units-dir", str(EXAMPLES), "--interfaces", "veth0")
    assert code == 0, out
    assert out.strip().endswith("4 units valid, 0 errors, 0 warnings")


def test_verify_reports_file_line_and_exits_1(tmp_path, capsys, bpf_objects):
    write(tmp_path, "good.unit", ini_unit(before="ghost"))
    shutil.copy(bpf_objects / "counter.bpf.o", tmp_path / "prog.bpf.o")
    write(tmp_path, "bad.unit", "[Attach]\nHook=xdpp\n")
    code, out, _ = run(capsys, "verify", "--units-dir", str(tmp_path), "--interfaces", "veth0")
    assert code == 1
    assert f"{tmp_path}/bad.unit:2: error: unit bad: Hook=xdpp is not one of: xdp, tc-ingress, tc-egress" in out
    assert f"{tmp_path}/good.unit:2: warning: unit good: Before=ghost: unit ghost exists nowhere" in out
    assert out.strip().endswith("1 units valid, 2 errors, 1 warnings")  # no Interfaces= asked of no hook


def test_verify_finds_cycles_on_named_interfaces_absent_here(tmp_path, capsys):
    write(tmp_path, "a.unit", ini_unit(interfaces="nosuchif0", before="b"))
    write(tmp_path, "b.unit", ini_unit(interfaces="nosuchif0", before="a"))
    code, out, _ = run(capsys, "verify", "--units-dir", str(tmp_path))
    assert code == 1 and "nosuchif0 xdp: ordering cycle a -> b -> a" in out


def test_verify_json(tmp_path, capsys):
    write(tmp_path, "a.unit", ini_unit(position="middle"))
    code, out, _ = run(capsys, "verify", "--units-dir", str(tmp_path), "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["errors"] == 1
    assert doc["diagnostics"][0] == {
        "severity": "error", "file": str(tmp_path / "a.unit"), "line": 7, "unit": "a", "key": "Position=",
        "message": "Position=middle is not one of: first, last",
    }


def test_verify_missing_units_dir(tmp_path, capsys):
    code, out, _ = run(capsys, "verify", "--units-dir", str(tmp_path / "nope"))
    assert code == 1 and "units folder does not exist" in out


def test_units_dir_repeatable_highest_first(tmp_path, capsys):
    write(tmp_path / "hi", "a.unit", ini_unit(interfaces="veth1"))
    write(tmp_path / "lo", "a.unit", ini_unit(interfaces="veth0"))
    code, out, _ = run(capsys, "order", "--units-dir", str(tmp_path / "hi"), "--units-dir", str(tmp_path / "lo"),
                       "--interfaces", "veth0,veth1")
    assert code == 0 and out == "veth1\n  xdp         a\n"


def test_order_text_json_dot(tmp_path, capsys):
    write(tmp_path, "a.unit", ini_unit(interfaces="veth*", before="b"))
    write(tmp_path, "b.unit", ini_unit(interfaces="veth*"))
    write(tmp_path, "c.unit", ini_unit(interfaces="veth1", hook="tc-egress"))
    argv = ["order", "--units-dir", str(tmp_path), "--interfaces", "veth0,veth1"]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert out == "veth0\n  xdp         a -> b\nveth1\n  tc-egress   c\n  xdp         a -> b\n"
    code, out, _ = run(capsys, *argv, "--format", "json")
    doc = json.loads(out)
    assert [(c["interface"], c["hook"], [u["name"] for u in c["units"]]) for c in doc["chains"]] == [
        ("veth0", "xdp", ["a", "b"]), ("veth1", "tc-egress", ["c"]), ("veth1", "xdp", ["a", "b"])]
    assert doc["chains"][0]["units"][0]["proceed_on"] == ["pass"]
    code, out, _ = run(capsys, *argv, "--format", "dot")
    assert out.startswith("digraph bpfunits {") and '"veth0/xdp/a" -> "veth0/xdp/b" [style=bold];' in out
    assert '[style=dashed, label="a Before=b"]' in out
    svg = subprocess.run(["dot", "-Tsvg"], input=out.encode(), check=True, capture_output=True).stdout
    assert b"<svg" in svg


def test_order_reports_cycle_keeps_other_hooks_exit_1(tmp_path, capsys):
    write(tmp_path, "a.unit", ini_unit(before="b"))
    write(tmp_path, "b.unit", ini_unit(before="a"))
    write(tmp_path, "c.unit", ini_unit(hook="tc-ingress"))
    code, out, err = run(capsys, "order", "--units-dir", str(tmp_path), "--interfaces", "veth0")
    assert code == 1 and out == "veth0\n  tc-ingress  c\n" and "ordering cycle a -> b -> a" in err


def test_order_defaults_to_host_interfaces(tmp_path, capsys):
    write(tmp_path, "a.unit", ini_unit(interfaces="lo"))
    code, out, _ = run(capsys, "order", "--units-dir", str(tmp_path))
    assert code == 0 and out == "lo\n  xdp         a\n"


def test_help_teaches_the_unit_language():
    for argv in (["--help"], ["verify", "--help"], ["order", "--help"]):
        out = subprocess.run([sys.executable, "-m", "bpfunits", *argv], capture_output=True, text=True, check=True).stdout
        assert "ProceedOn=" in out and "[Program]" in out and "/etc/bpfunits.d" in out and "drop-in" in out.lower()


def test_console_script_installed():
    exe = Path(sys.executable).with_name("bpfunits")
    assert subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout.startswith("bpfunits ")


@pytest.mark.parametrize("argv", [["frobnicate"], []])
def test_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
