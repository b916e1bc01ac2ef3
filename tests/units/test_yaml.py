from bpfunits.order.chains import order_all
from bpfunits.units.search import load_units
from tests.unitfiles import write

INI = {
    "scrubber": "[Program]\nObject=s.o\n[Attach]\nHook=xdp\nInterfaces=veth*\nPosition=first\n",
    "ratelimit": "[Unit]\nAfter=scrubber\nBefore=connlimit\n[Program]\nObject=r.o\nName=xdp_rl\n"
    "[Attach]\nHook=xdp\nInterfaces=veth0 veth1\nProceedOn=pass tx\n",
    "connlimit": "[Program]\nSource=c.c\nDefine=LIMIT=5\n[Attach]\nHook=xdp\nInterfaces=veth0\n",
    "counter": "[Unit]\nDescription=counts\n[Program]\nObject=k.o\n[Attach]\nHook=tc-egress\nInterfaces=veth*\nProceedOn=ok next pipe\n",
}
YAML = {
    "scrubber": "program: {object: s.o}\nattach: {hook: xdp, interfaces: 'veth*', position: first}\n",
    "ratelimit": "after: [scrubber]\nbefore: connlimit\nprogram:\n  object: r.o\n  name: xdp_rl\n"
    "attach:\n  hook: xdp\n  interfaces: [veth0, veth1]\n  proceed_on: [pass, tx]\n",
    "connlimit": "program:\n  source: c.c\n  define: {LIMIT: 5}\nattach: {hook: xdp, interfaces: [veth0]}\n",
    "counter": "description: counts\nprogram: {object: k.o}\nattach:\n  hook: tc-egress\n  interfaces: ['veth*']\n"
    "  proceed_on: ok next pipe\n",
}


def test_ini_and_yaml_forms_give_identical_units_and_chains(tmp_path):
    for name, text in INI.items():
        write(tmp_path / "ini", f"{name}.unit", text)
    for name, text in YAML.items():
        write(tmp_path / "yaml", f"{name}.yaml", text)
    ini = load_units((tmp_path / "ini",))
    yml = load_units((tmp_path / "yaml",))
    assert ini.diagnostics == [] and yml.diagnostics == []

    def comparable(u):
        return (u.name, u.hook, u.program.object and u.program.object.name, u.program.source and u.program.source.name,
                u.program.name, u.program.defines, u.interfaces, u.proceed_on, u.before, u.after, u.position, u.description)

    assert [comparable(u) for u in ini.units.values()] == [comparable(u) for u in yml.units.values()]
    interfaces = ["veth0", "veth1", "eth9"]
    ini_chains = {k: c.names for k, c in order_all(ini.units.values(), interfaces).chains.items()}
    yml_chains = {k: c.names for k, c in order_all(yml.units.values(), interfaces).chains.items()}
    assert ini_chains == yml_chains
    assert [c for k, c in ini_chains.items() if k.interface == "veth0" and k.hook.value == "xdp"] == [
        ("scrubber", "ratelimit", "connlimit")
    ]


def messages(tmp_path, text):
    write(tmp_path, "a.yaml", text)
    result = load_units((tmp_path,))
    assert "a" not in result.units
    return [str(d) for d in result.diagnostics]


def test_yaml_unknown_key_with_line_and_suggestion(tmp_path):
    got = messages(tmp_path, "program: {object: a.o}\nattach:\n  hook: xdp\n  interfaces: veth0\n  proceedon: [pass]\n")
    assert got == [f"{tmp_path}/a.yaml:5: error: unit a: unknown key 'proceedon' at 'attach' (did you mean proceed_on?)"]


def test_yaml_top_level_suggestion_and_duplicates(tmp_path):
    got = messages(tmp_path, "programs: {object: a.o}\nattach: {hook: xdp, interfaces: veth0, hook: tc-egress}\n")
    assert f"{tmp_path}/a.yaml:1: error: unit a: unknown key 'programs' at the top level (did you mean program?)" in got
    assert f"{tmp_path}/a.yaml:2: error: unit a: duplicate key 'hook'" in got


def test_yaml_syntax_error_has_line(tmp_path):
    got = messages(tmp_path, "program:\n  object: a.o\nattach: [unclosed\n")
    assert len(got) == 1 and got[0].startswith(f"{tmp_path}/a.yaml:") and "invalid YAML" in got[0]


def test_yaml_value_errors_point_at_keys(tmp_path):
    got = messages(tmp_path, "program: {object: a.o}\nattach:\n  hook: xdp\n  interfaces: veth0\n  position: [first]\n")
    assert got == [f"{tmp_path}/a.yaml:5: error: unit a: 'position' takes a single value"]


def test_yaml_not_a_mapping(tmp_path):
    assert messages(tmp_path, "- just\n- a list\n") == [f"{tmp_path}/a.yaml:1: error: unit a: a unit file must be a mapping of keys to values"]
