import pytest

from bpfunits.order.chains import order_all, unknown_references, verification_interfaces
from bpfunits.order.graph import OrderError
from bpfunits.units.search import load_units
from tests.unitfiles import ini_unit, write


def chains(tmp_path, interfaces=("veth0",)):
    loaded = load_units((tmp_path,))
    assert loaded.errors == []
    ordering = order_all(loaded.units.values(), interfaces)
    return {str(k): c.names for k, c in ordering.chains.items()}, ordering.errors


def test_before_and_after_give_edges(tmp_path):
    write(tmp_path, "a.unit", ini_unit(after="b"))
    write(tmp_path, "b.unit", ini_unit(after="c"))
    write(tmp_path, "c.unit", ini_unit(before="b"))
    got, errors = chains(tmp_path)
    assert got == {"veth0 xdp": ("c", "b", "a")} and errors == []


def test_ties_broken_by_name(tmp_path):
    for name in ("20-bar", "10-foo", "30-baz"):
        write(tmp_path, f"{name}.unit", ini_unit())
    assert chains(tmp_path)[0] == {"veth0 xdp": ("10-foo", "20-bar", "30-baz")}


def test_reference_to_unit_not_on_the_hook_is_ignored(tmp_path):
    write(tmp_path, "a.unit", ini_unit(before="t"))
    write(tmp_path, "z.unit", ini_unit(after="t ghost"))
    write(tmp_path, "t.unit", ini_unit(hook="tc-ingress", after="a"))
    got, errors = chains(tmp_path)
    assert got == {"veth0 tc-ingress": ("t",), "veth0 xdp": ("a", "z")} and errors == []


def test_first_and_last(tmp_path):
    write(tmp_path, "a.unit", ini_unit(position="last"))
    write(tmp_path, "m.unit", ini_unit())
    write(tmp_path, "z.unit", ini_unit(position="first"))
    write(tmp_path, "b.unit", ini_unit(after="z"))
    assert chains(tmp_path)[0] == {"veth0 xdp": ("z", "b", "m", "a")}


def test_two_firsts_conflict_names_both_with_files(tmp_path):
    write(tmp_path, "a.unit", ini_unit(position="first"))
    write(tmp_path, "b.unit", ini_unit(position="first"))
    write(tmp_path, "c.unit", ini_unit(position="last", hook="tc-egress"))
    got, errors = chains(tmp_path)
    assert got == {"veth0 tc-egress": ("c",)}
    assert [str(e) for e in errors] == [
        f"veth0 xdp: a ({tmp_path}/a.unit:7), b ({tmp_path}/b.unit:7) both want Position=first"
    ]
    assert errors[0].units == ("a", "b")


def test_firsts_on_different_interfaces_do_not_conflict(tmp_path):
    write(tmp_path, "a.unit", ini_unit(position="first", interfaces="veth0"))
    write(tmp_path, "b.unit", ini_unit(position="first", interfaces="veth1"))
    assert chains(tmp_path, ("veth0", "veth1"))[1] == []


def test_cycle_message_lists_each_edge_with_its_file(tmp_path):
    write(tmp_path, "a.unit", ini_unit(before="b"))
    write(tmp_path, "b.unit", ini_unit(before="c"))
    write(tmp_path, "c.unit", ini_unit(after="b", before="a"))
    write(tmp_path, "other.unit", ini_unit(hook="tc-ingress"))
    got, errors = chains(tmp_path)
    assert got == {"veth0 tc-ingress": ("other",)}, "the other hook is unaffected"
    assert str(errors[0]) == "\n".join([
        "veth0 xdp: ordering cycle a -> b -> c -> a",
        f"  a -> b: a Before=b ({tmp_path}/a.unit:2)",
        f"  b -> c: b Before=c ({tmp_path}/b.unit:2)",
        f"  b -> c: c After=b ({tmp_path}/c.unit:3)",
        f"  c -> a: c Before=a ({tmp_path}/c.unit:2)",
    ])
    assert errors[0].diagnostic().location.line == 2


def test_position_against_declared_edge_is_a_cycle(tmp_path):
    write(tmp_path, "a.unit", ini_unit(position="first"))
    write(tmp_path, "b.unit", ini_unit(before="a"))
    _, errors = chains(tmp_path)
    assert "ordering cycle a -> b -> a" in str(errors[0])
    assert "a Position=first" in str(errors[0]) and "b Before=a" in str(errors[0])


def test_self_reference_is_a_cycle(tmp_path):
    write(tmp_path, "a.unit", ini_unit(before="a"))
    _, errors = chains(tmp_path)
    assert isinstance(errors[0], OrderError) and "a -> a" in str(errors[0])


def test_unknown_and_masked_references_warn(tmp_path):
    import os
    write(tmp_path, "a.unit", ini_unit(before="ghost", after="m"))
    os.symlink("/dev/null", tmp_path / "m.unit")
    loaded = load_units((tmp_path,))
    got = sorted(str(w) for w in unknown_references(loaded.units, loaded.masked))
    assert got == [
        f"{tmp_path}/a.unit:2: warning: unit a: Before=ghost: unit ghost exists nowhere",
        f"{tmp_path}/a.unit:3: warning: unit a: After=m: unit m is masked",
    ]


def test_verification_interfaces_adds_literal_names(tmp_path):
    write(tmp_path, "a.unit", ini_unit(interfaces="wg0 veth* !x"))
    units = load_units((tmp_path,)).units.values()
    assert verification_interfaces(units, ["lo"]) == ["lo", "wg0"]


@pytest.mark.parametrize("count", [200])
def test_many_units_many_interfaces(tmp_path, count):
    for i in range(count):
        write(tmp_path, f"u{i:03}.unit", ini_unit(interfaces="veth*", after=f"u{i - 1:03}" if i else ""))
    got, errors = chains(tmp_path, [f"veth{i}" for i in range(50)])
    assert errors == [] and len(got) == 50
    assert got["veth7 xdp"] == tuple(f"u{i:03}" for i in range(count))
