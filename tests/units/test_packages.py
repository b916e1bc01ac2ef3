"""Unit keys for packages of units: MapsFrom= and %i in template instances."""

import os

from bpfunits.units.search import load_units
from tests.unitfiles import write

TEMPLATE = """
    [Program]
    Object=connlimit.bpf.o
    MapsFrom=limits connlimit@%i
    [Attach]
    Hook=xdp
    Interfaces=%i
"""


def test_maps_from_is_a_list_of_units_in_order(tmp_path):
    write(tmp_path, "a.unit", "[Program]\nObject=a.o\nMapsFrom=x y\nMapsFrom=z x\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    result = load_units((tmp_path,))
    assert result.diagnostics == []
    assert result.units["a"].program.maps_from == ("x", "y", "z")


def test_maps_from_needs_an_object(tmp_path):
    write(tmp_path, "a.unit", "[Program]\nSource=a.c\nMapsFrom=x\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    got = [str(d) for d in load_units((tmp_path,)).diagnostics]
    assert got == [f"{tmp_path}/a.unit:3: error: unit a: MapsFrom= applies only to Object= programs"]


def test_an_instance_fills_in_its_name_where_the_template_says_percent_i(tmp_path):
    template = write(tmp_path, "connlimit-tracker@.unit", TEMPLATE)
    for tenant in ("veth1", "veth2"):  # instances link to the template, as systemd's do
        os.symlink(template.name, tmp_path / f"connlimit-tracker@{tenant}.unit")
    result = load_units((tmp_path,))
    assert result.diagnostics == []
    units = result.units
    assert set(units) == {"connlimit-tracker@veth1", "connlimit-tracker@veth2"}  # the template is none
    assert units["connlimit-tracker@veth1"].interfaces == ("veth1",)
    assert units["connlimit-tracker@veth1"].program.maps_from == ("limits", "connlimit@veth1")
    assert units["connlimit-tracker@veth2"].interfaces == ("veth2",)


def test_percent_i_outside_an_instance_is_an_error(tmp_path):
    write(tmp_path, "connlimit.unit", TEMPLATE)
    got = [str(d) for d in load_units((tmp_path,)).diagnostics]
    assert got == [f"{tmp_path}/connlimit.unit:3: error: unit connlimit: MapsFrom= uses %i, but unit connlimit "
                   "is no instance of a template (NAME@INSTANCE)"]
