import os

from bpfunits.hooks.events import SPELLINGS
from bpfunits.units.search import load_units
from tests.unitfiles import ini_unit, write

EVENT_HOOKS = ", ".join(SPELLINGS)


def folders(tmp_path):
    etc, run, lib = tmp_path / "etc", tmp_path / "run", tmp_path / "lib"
    for f in (etc, run, lib):
        f.mkdir()
    return etc, run, lib


def test_precedence_across_three_folders(tmp_path):
    etc, run, lib = folders(tmp_path)
    write(lib, "a.unit", ini_unit(interfaces="lib0"))
    write(lib, "b.unit", ini_unit(interfaces="lib0"))
    write(lib, "c.unit", ini_unit(interfaces="lib0"))
    write(run, "b.unit", ini_unit(interfaces="run0"))
    write(run, "c.unit", ini_unit(interfaces="run0"))
    write(etc, "c.yaml", "program: {object: p.o}\nattach: {hook: xdp, interfaces: etc0}\n")
    units = load_units((etc, run, lib)).units
    assert {n: u.interfaces for n, u in units.items()} == {"a": ("lib0",), "b": ("run0",), "c": ("etc0",)}
    assert units["c"].path == etc / "c.yaml"


def test_mask_with_dev_null_symlink_and_empty_file(tmp_path):
    etc, run, lib = folders(tmp_path)
    write(lib, "a.unit", ini_unit())
    write(lib, "b.unit", ini_unit())
    write(lib, "c.unit", ini_unit())
    os.symlink("/dev/null", etc / "a.unit")
    (run / "b.unit").write_text("")
    write(etc, "c.d/x.conf", "[Attach]\nInterfaces=veth9\n")
    result = load_units((etc, run, lib))
    assert list(result.units) == ["c"]
    assert result.masked == {"a": etc / "a.unit", "b": run / "b.unit"}
    assert result.diagnostics == []


def test_mask_of_a_yaml_name_masks_the_unit_form_too(tmp_path):
    etc, run, lib = folders(tmp_path)
    write(lib, "a.unit", ini_unit())
    os.symlink("/dev/null", etc / "a.yaml")
    assert load_units((etc, run, lib)).units == {}


def test_dropins_override_append_and_reset_in_lexical_order(tmp_path):
    etc, run, lib = folders(tmp_path)
    write(lib, "a.unit", ini_unit(interfaces="veth0", after="x"))
    write(lib, "a.d/10-iface.conf", "[Attach]\nInterfaces=veth1\n")  # appends
    write(run, "a.d/20-after.conf", "[Unit]\nAfter=\nAfter=y\n")  # resets, then sets
    write(etc, "a.d/30-pos.conf", "[Attach]\nPosition=last\n")
    unit = load_units((etc, run, lib)).units["a"]
    assert unit.interfaces == ("veth0", "veth1")
    assert unit.after == ("y",)
    assert unit.position.value == "last"
    assert [p.name for p in unit.dropins] == ["10-iface.conf", "20-after.conf", "30-pos.conf"]
    assert str(unit.where("after", "y")) == f"{run}/a.d/20-after.conf:3"


def test_same_named_dropin_in_higher_folder_replaces_lower(tmp_path):
    etc, run, lib = folders(tmp_path)
    write(lib, "a.unit", ini_unit())
    write(lib, "a.d/override.conf", "[Attach]\nHook=tc-ingress\n")
    write(etc, "a.d/override.conf", "[Attach]\nHook=tc-egress\n")
    unit = load_units((etc, run, lib)).units["a"]
    assert unit.hook.value == "tc-egress"
    assert unit.dropins == (etc / "a.d/override.conf",)


def test_dropin_applies_to_yaml_unit(tmp_path):
    etc, run, lib = folders(tmp_path)
    write(lib, "a.yaml", "program: {object: p.o}\nattach: {hook: xdp, interfaces: veth0}\n")
    write(etc, "a.d/p.conf", "[Attach]\nProceedOn=pass tx\n")
    assert load_units((etc, run, lib)).units["a"].proceed_on == {"pass", "tx"}


def test_error_in_dropin_names_the_dropin(tmp_path):
    etc, run, lib = folders(tmp_path)
    write(lib, "a.unit", ini_unit())
    write(etc, "a.d/bad.conf", "[Attach]\nHook=tcx\n")
    result = load_units((etc, run, lib))
    assert result.units == {}
    assert [str(d) for d in result.errors] == [f"{etc}/a.d/bad.conf:2: error: unit a: Hook=tcx is not one of: xdp, tc-ingress, tc-egress, " + EVENT_HOOKS]


def test_dropin_without_unit_warns(tmp_path):
    etc, run, lib = folders(tmp_path)
    write(etc, "ghost.d/x.conf", "[Attach]\nHook=xdp\n")
    result = load_units((etc, run, lib))
    assert result.errors == []
    assert "ghost" in result.diagnostics[0].message and result.diagnostics[0].severity.value == "warning"


def test_two_forms_in_one_folder_is_an_error(tmp_path):
    write(tmp_path, "a.unit", ini_unit())
    write(tmp_path, "a.yaml", "program: {object: p.o}\nattach: {hook: xdp, interfaces: veth0}\n")
    result = load_units((tmp_path,))
    assert "defined twice" in result.errors[0].message


def test_other_files_and_hidden_files_ignored(tmp_path):
    write(tmp_path, "a.unit", ini_unit())
    write(tmp_path, ".a.unit.swp", "garbage")
    write(tmp_path, "README", "hello")
    write(tmp_path, "prog.bpf.o", "ELF")
    result = load_units((tmp_path,))
    assert list(result.units) == ["a"] and result.diagnostics == []


def test_kubernetes_configmap_layout(tmp_path):
    data = tmp_path / "..2026_11_22_01"
    write(data, "a.unit", ini_unit())
    os.symlink(data.name, tmp_path / "..data")
    os.symlink("..data/a.unit", tmp_path / "a.unit")
    result = load_units((tmp_path,))
    assert list(result.units) == ["a"] and result.diagnostics == []


def test_missing_folder_is_an_error_only_when_named(tmp_path):
    assert load_units((tmp_path / "nope",)).diagnostics == []
    assert "does not exist" in load_units((tmp_path / "nope",), required=True).errors[0].message
