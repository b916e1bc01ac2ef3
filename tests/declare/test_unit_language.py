"""Global=, [Map] Entry= and Policy= in INI and YAML, and `verify` typing them by the object's BTF."""

from __future__ import annotations

import json
from pathlib import Path

from bpfunits.cli import main
from bpfunits.cli.common import UNIT_LANGUAGE
from bpfunits.declare.typed import typed_declarations
from bpfunits.units.model import MapEntry
from bpfunits.units.search import load_units
from tests.unitfiles import write

OBJ = Path(__file__).parents[2] / "bpf" / "declared_shapes.bpf.o"

INI = f"""\
[Program]
Object={OBJ}
Global=verdict=2
Global=data_verdict=0x2
Global=greeting="hi there"
[Attach]
Hook=xdp
Interfaces=veth0
[Map]
Entry=lpm_v4 198.19.66.0/24 ACTION_DENY
Entry=shapes 0 {{u8=1 inner={{port=80 nport=443}} list=[1 2 3] mac=02:00:00:00:00:01}}
Entry=per_cpu 1 5
Policy=lpm_v4 exact
Policy=shapes merge
"""

YAML = f"""\
program:
  object: {OBJ}
  globals: {{verdict: 2, data_verdict: 0x2, greeting: hi there}}
attach: {{hook: xdp, interfaces: veth0}}
maps:
  lpm_v4:
    policy: exact
    entries:
      - {{key: 198.19.66.0/24, value: ACTION_DENY}}
  shapes:
    policy: merge
    entries:
      - key: 0
        value: {{u8: 1, inner: {{port: 80, nport: 443}}, list: [1, 2, 3], mac: "02:00:00:00:00:01"}}
  per_cpu:
    entries: ["1 5"]
"""


def test_ini_and_yaml_declare_the_same(tmp_path):
    write(tmp_path / "ini", "a.unit", INI)
    write(tmp_path / "yaml", "a.yaml", YAML)
    ini, yml = load_units((tmp_path / "ini",)), load_units((tmp_path / "yaml",))
    assert ini.diagnostics == [] and yml.diagnostics == []
    a, b = ini.units["a"], yml.units["a"]
    assert a.program.globals == b.program.globals == (
        ("verdict", "2"), ("data_verdict", "0x2"), ("greeting", '"hi there"'))
    assert set(a.map_entries) == set(b.map_entries) == {
        MapEntry("lpm_v4", "198.19.66.0/24", "ACTION_DENY"),
        MapEntry("shapes", "0", "{u8=1 inner={port=80 nport=443} list=[1 2 3] mac=02:00:00:00:00:01}"),
        MapEntry("per_cpu", "1", "5"),
    }
    assert a.exact_maps == b.exact_maps == {"lpm_v4"}


def test_last_assignment_wins_and_empty_resets(tmp_path):
    write(tmp_path, "a.unit", INI.replace("Global=verdict=2\n", "Global=verdict=2\nGlobal=verdict=1\n")
          + "Entry=per_cpu 1 6\n")
    u = load_units((tmp_path,)).units["a"]
    assert dict(u.program.globals)["verdict"] == "1"
    assert MapEntry("per_cpu", "1", "6") in u.map_entries and MapEntry("per_cpu", "1", "5") not in u.map_entries
    write(tmp_path, "a.unit", INI + "Entry=\n")
    assert load_units((tmp_path,)).units["a"].map_entries == ()


def test_syntax_errors_name_file_and_line(tmp_path):
    write(tmp_path, "a.unit", INI.replace("Entry=per_cpu 1 5", "Entry=per_cpu 1 {a=1").replace(
        "Policy=shapes merge", "Policy=shapes sometimes"))
    got = [str(d) for d in load_units((tmp_path,)).diagnostics]
    assert got == [
        f"{tmp_path}/a.unit:12: error: unit a: Entry=per_cpu 1 {{a=1: missing '}}'",
        f"{tmp_path}/a.unit:14: error: unit a: Policy=shapes sometimes: must be MAP merge or MAP exact",
    ]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out


def test_verify_types_every_declaration_by_btf(tmp_path, capsys):
    write(tmp_path, "a.unit", f"""\
        [Program]
        Object={OBJ}
        Global=verdct=1
        Global=rodata_port=70000
        [Attach]
        Hook=xdp
        Interfaces=veth0
        [Map]
        Entry=lpm_v4 198.19.66.0/24 ACTION_DROP
        Entry=shapes 0 {{inner={{dport=1}}}}
        Entry=lpm 10.0.0.0/8 1
        Policy=lmp_v6 exact
        """)
    code, out = run(capsys, "verify", "--units-dir", str(tmp_path), "--interfaces", "veth0")
    assert code == 1
    f = f"{tmp_path}/a.unit"
    assert out.splitlines() == [
        f"{f}:3: error: unit a: Global=verdct: {OBJ} has no global variable 'verdct' (did you mean verdict?); "
        "its globals: bss_verdict, data_verdict, custom_verdict, verdict, rodata_port, greeting, rodata_action, "
        "custom_limit",
        f"{f}:4: error: unit a: Global=rodata_port=70000: 70000 does not fit __be16 (0..65535) (the variable is __be16)",
        f"{f}:9: error: unit a: Entry=lpm_v4 198.19.66.0/24 ACTION_DROP: value: enum action has no enumerator "
        "'ACTION_DROP'; it has: ACTION_ALLOW, ACTION_DENY, ACTION_LOG",
        f"{f}:10: error: unit a: Entry=shapes 0 {{inner={{dport=1}}}}: value.inner: struct inner has no member "
        "'dport'; its members: port, nport, delta",
        f"{f}:11: error: unit a: Entry=lpm 10.0.0.0/8 1: {OBJ} has no map 'lpm' (did you mean lpm_v6?); its maps: "
        "per_cpu, shapes, lpm_v4, lpm_v6",
        f"{f}:12: error: unit a: Policy=lmp_v6 exact: {OBJ} has no map 'lmp_v6' (did you mean lpm_v6?); its maps: "
        "per_cpu, shapes, lpm_v4, lpm_v6",
        "0 units valid, 6 errors, 0 warnings",
    ]


def test_verify_accepts_declarations_that_fit_and_reports_json(tmp_path, capsys):
    write(tmp_path, "a.unit", INI)
    code, out = run(capsys, "verify", "--units-dir", str(tmp_path), "--interfaces", "veth0")
    assert code == 0, out
    write(tmp_path, "a.unit", INI.replace("Global=verdict=2", "Global=verdict=-1"))
    code, out = run(capsys, "verify", "--units-dir", str(tmp_path), "--interfaces", "veth0", "--format", "json")
    assert code == 1
    [d] = json.loads(out)["diagnostics"]
    assert (d["line"], d["key"], d["unit"]) == (3, "Global=", "a")


def test_help_lists_the_keys():
    for key in ("Global=", "Entry=", "Policy=", "[Map]"):
        assert key in UNIT_LANGUAGE


def test_yaml_maps_shape_errors_name_the_line(tmp_path):
    write(tmp_path, "a.yaml", f"""\
        program: {{object: {OBJ}}}
        attach: {{hook: xdp, interfaces: veth0}}
        maps:
          lpm_v4:
            polcy: exact
            entries:
              - {{key: 10.0.0.0/8}}
        """)
    got = [str(d) for d in load_units((tmp_path,)).diagnostics]
    shape = "'maps' maps each map name to {policy: merge|exact, entries: [{key: ..., value: ...}]}"
    assert got == [
        f"{tmp_path}/a.yaml:5: error: unit a: {shape}",
        f"{tmp_path}/a.yaml:7: error: unit a: 'entries' items are mappings of key and value (or \"KEY VALUE\" text)",
    ]


def test_readme_key_table_lists_the_keys():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for key in ("`[Program]` `Global=NAME=VALUE`", "`[Map]` `Entry=MAP KEY VALUE`", "`[Map]` `Policy=MAP"):
        assert key in readme


def test_typed_declarations_encode_and_know_the_compiled_values(tmp_path):
    write(tmp_path, "a.unit", INI)
    unit = load_units((tmp_path,)).units["a"]
    typed = typed_declarations(unit, OBJ.read_bytes())
    assert {(g.name, g.section, g.data) for g in typed.globals} == {
        ("verdict", ".rodata", b"\2\0\0\0"), ("data_verdict", ".data", b"\2\0\0\0"),
        ("greeting", ".rodata", b"hi there")}
    assert {e.entry.map: len(e.value) for e in typed.entries} == {"lpm_v4": 4, "shapes": 136, "per_cpu": 8}
    compiled = dict(typed.compiled)
    assert (compiled["verdict"], compiled["greeting"], compiled["custom_limit"], compiled["bss_verdict"],
            compiled["rodata_action"]) == ("2", "hi", "7", "0", "ACTION_ALLOW")
