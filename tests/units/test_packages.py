"""Unit keys for packages of units: MapsFrom= and %i in template instances."""

import os

from bpfunits.cli import main
from bpfunits.hooks import probe
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


def test_verify_warns_that_ordering_keys_are_ignored_on_event_hooks(tmp_path, capsys, bpf_objects):
    write(tmp_path, "release.unit", f"""
        [Unit]
        After=connlimit
        [Program]
        Object={bpf_objects}/examples/connlimit.bpf.o
        Name=connlimit_release
        [Attach]
        Hook=tracepoint:sock/inet_sock_set_state
        Position=last
    """)
    write(tmp_path, "connlimit.unit", f"[Program]\nObject={bpf_objects}/examples/connlimit.bpf.o\n"
          "Name=xdp_connlimit\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    assert main(["verify", "--units-dir", str(tmp_path), "--interfaces", "veth0"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"{tmp_path}/release.unit:2: warning: unit release: After= is ignored: programs on the tracepoint hook run "
        "alone, in no order bpfunits sets",
        f"{tmp_path}/release.unit:8: warning: unit release: Position= is ignored: programs on the tracepoint hook "
        "run alone, in no order bpfunits sets",
        "2 units valid, 0 errors, 2 warnings",
    ]


def test_event_hooks_refuse_interfaces_and_read_their_targets(tmp_path):
    write(tmp_path, "a.unit", "[Program]\nObject=a.o\n[Attach]\nHook=tracepoint:sock/inet_sock_set_state\n"
          "Interfaces=eth0\n")
    write(tmp_path, "b.unit", "[Program]\nObject=a.o\n[Attach]\nHook=kprobe:tcp_close+0x10\n")
    write(tmp_path, "c.unit", "[Program]\nObject=a.o\n[Attach]\nHook=cgroup-skb-ingress\n")
    write(tmp_path, "d.unit", "[Program]\nObject=a.o\n[Attach]\nHook=tracepoint:no_slash\n")
    write(tmp_path, "e.unit", "[Program]\nObject=a.o\n[Attach]\nHook=cgroup-skb-egress\nCgroup=/sys/fs/cgroup/x\n")
    result = load_units((tmp_path,))
    assert [str(d) for d in result.diagnostics] == [
        f"{tmp_path}/a.unit:5: error: unit a: Interfaces= does not apply on the tracepoint hook, where the program "
        "runs alone and on no interface",
        f"{tmp_path}/c.unit:4: error: unit c: Hook=cgroup-skb-ingress needs Cgroup=/sys/fs/cgroup/... (an absolute path)",
        f"{tmp_path}/d.unit:4: error: unit d: Hook=tracepoint:no_slash does not read as tracepoint:CATEGORY/NAME",
    ]
    assert result.units["b"].hook.value == "kprobe:tcp_close+0x10"
    assert result.units["e"].hook.value == "cgroup-skb-egress:/sys/fs/cgroup/x"
    assert result.units["e"].interfaces == ()


def test_verify_orders_the_units_of_a_cgroup_hook_where_the_kernel_can(tmp_path, capsys, bpf_objects):
    """A cycle there is an error where the kernel orders cgroup programs (or verify cannot ask it:
    not root); where it cannot, the keys are ignored with a warning."""
    for name, other in (("a", "b"), ("b", "a")):
        write(tmp_path, f"{name}.unit", f"[Unit]\nAfter={other}\n[Program]\nObject={bpf_objects}/events.bpf.o\n"
              "Name=cgroup_egress\n[Attach]\nHook=cgroup-skb-egress\nCgroup=/sys/fs/cgroup/web\n")
    features = probe.features() if os.geteuid() == 0 else None
    ordered = features is None or features.has(probe.CGROUP_MPROG)
    assert main(["verify", "--units-dir", str(tmp_path), "--interfaces", "veth0"]) == (1 if ordered else 0)
    out = capsys.readouterr().out.splitlines()
    if ordered:
        assert out[-4:] == [f"{tmp_path}/b.unit:2: error: cgroup-skb-egress:/sys/fs/cgroup/web: ordering cycle "
                            "a -> b -> a", f"  a -> b: b After=a ({tmp_path}/b.unit:2)",
                            f"  b -> a: a After=b ({tmp_path}/a.unit:2)", "2 units valid, 1 errors, 0 warnings"]
    else:
        assert out[-1] == "2 units valid, 0 errors, 2 warnings"
