from pathlib import Path

from bpfunits.hooks import Hook
from bpfunits.units.model import Position
from bpfunits.units.search import load_units
from tests.unitfiles import write

FULL = """
    [Unit]
    Description=Per-source SYN rate limiter
    After=scrubber
    Before=connlimit lb

    [Program]
    Object=ratelimit.bpf.o        # absolute, or relative to the unit file's folder
    Name=xdp_ratelimit            # the program (function) in the object
    SHA256=ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789

    [Attach]
    Hook=xdp                      # xdp | tc-ingress | tc-egress
    Interfaces=eth0 veth* !veth-mgmt
    Position=first
    ProceedOn=pass tx
"""


def test_full_unit_parses_every_key(tmp_path):
    write(tmp_path, "ratelimit.unit", FULL)
    result = load_units((tmp_path,))
    assert result.diagnostics == []
    unit = result.units["ratelimit"]
    assert unit.name == "ratelimit"
    assert unit.description == "Per-source SYN rate limiter"
    assert unit.after == ("scrubber",)
    assert unit.before == ("connlimit", "lb")
    assert unit.program.object == tmp_path / "ratelimit.bpf.o"
    assert unit.program.name == "xdp_ratelimit"
    assert unit.program.sha256 == "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
    assert unit.hook is Hook.XDP
    assert unit.interfaces == ("eth0", "veth*", "!veth-mgmt")
    assert unit.position is Position.FIRST
    assert unit.proceed_on == {"pass", "tx"}
    assert unit.proceed_codes == {2, 3}
    assert str(unit.where("before", "lb")) == f"{tmp_path}/ratelimit.unit:4"


def test_absolute_object_path_kept(tmp_path):
    write(tmp_path, "a.unit", "[Program]\nObject=/opt/x.o\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    assert load_units((tmp_path,)).units["a"].program.object == Path("/opt/x.o")


def test_defaults_per_hook(tmp_path):
    write(tmp_path, "x.unit", "[Program]\nObject=x.o\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    write(tmp_path, "t.unit", "[Program]\nObject=x.o\n[Attach]\nHook=tc-egress\nInterfaces=veth0\n")
    units = load_units((tmp_path,)).units
    assert units["x"].proceed_on == {"pass"}
    assert units["t"].proceed_on == {"ok", "next"}
    assert units["t"].proceed_codes == {0, -1}


def test_list_keys_append_and_empty_assignment_resets(tmp_path):
    write(tmp_path, "a.unit", """
        [Unit]
        After=x y
        After=z
        Before=q
        Before=
        Before=r
        [Program]
        Object=a.o
        [Attach]
        Hook=xdp
        Interfaces=veth0
        Interfaces=veth1
    """)
    unit = load_units((tmp_path,)).units["a"]
    assert unit.after == ("x", "y", "z")
    assert unit.before == ("r",)
    assert unit.interfaces == ("veth0", "veth1")


def test_repeated_scalar_replaces_and_continuation_lines(tmp_path):
    write(tmp_path, "a.unit", "[Unit]\nDescription=one\nDescription=two \\\n  lines\n; comment\n"
          "[Program]\nObject=a.o\n[Attach]\nHook=xdp\nInterfaces=veth0 \\\n veth1\n")
    unit = load_units((tmp_path,)).units["a"]
    assert unit.description == "two lines"
    assert unit.interfaces == ("veth0", "veth1")


def test_source_with_defines(tmp_path):
    write(tmp_path, "a.unit", "[Program]\nSource=prog.c\nDefine=LIMIT=10 DEBUG\nDefine=MODE=x=y\n"
          "[Attach]\nHook=tc-ingress\nInterfaces=veth0\n")
    program = load_units((tmp_path,)).units["a"].program
    assert program.source == tmp_path / "prog.c"
    assert program.object is None
    assert program.defines == (("LIMIT", "10"), ("DEBUG", "1"), ("MODE", "x=y"))


def messages(tmp_path, text, name="a.unit"):
    write(tmp_path, name, text)
    result = load_units((tmp_path,))
    assert name.rsplit(".", 1)[0] not in result.units
    return [str(d) for d in result.diagnostics]


def test_unknown_key_suggests_and_names_file_line_unit(tmp_path):
    got = messages(tmp_path, "[Program]\nObject=a.o\n[Attach]\nHook=xdp\nInterfaces=veth0\nProcedOn=pass\n")
    assert got == [f"{tmp_path}/a.unit:6: error: unit a: unknown key ProcedOn= in [Attach] (did you mean ProceedOn?)"]


def test_key_in_wrong_section(tmp_path):
    got = messages(tmp_path, "[Program]\nObject=a.o\nHook=xdp\n[Attach]\nInterfaces=veth0\n")
    assert f"{tmp_path}/a.unit:3: error: unit a: Hook= belongs in [Attach], not [Program]" in got


def test_unknown_section_suggests(tmp_path):
    got = messages(tmp_path, "[Programm]\nObject=a.o\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    assert got[0] == f"{tmp_path}/a.unit:1: error: unit a: unknown section [Programm] (did you mean Program?)"


def test_garbage_line_and_key_before_section(tmp_path):
    got = messages(tmp_path, "Hook=xdp\n[Attach]\nthis is not a key\n")
    assert f"{tmp_path}/a.unit:1: error: unit a: Hook= appears before any [Section] header" in got
    assert f"{tmp_path}/a.unit:3: error: unit a: expected 'Key=value' or '[Section]', got 'this is not a key'" in got


def test_value_errors_point_at_their_line(tmp_path):
    got = messages(tmp_path, """
        [Program]
        Object=a.o
        SHA256=nothex
        [Attach]
        Hook=xdp
        Interfaces=veth0
        Position=middle
        ProceedOn=pass shot
    """)
    assert got == [
        f"{tmp_path}/a.unit:3: error: unit a: SHA256=nothex: must be 64 hexadecimal digits",
        f"{tmp_path}/a.unit:7: error: unit a: Position=middle is not one of: first, last",
        f"{tmp_path}/a.unit:8: error: unit a: ProceedOn=shot is not one of: aborted, drop, pass, tx, redirect",
    ]


def test_tc_verdicts_accepted_on_tc_only(tmp_path):
    write(tmp_path, "t.unit", "[Program]\nObject=a.o\n[Attach]\nHook=tc-ingress\nInterfaces=veth0\nProceedOn=next pipe shot\n")
    assert load_units((tmp_path,)).units["t"].proceed_codes == {-1, 3, 2}


def test_object_and_source_exactly_one(tmp_path):
    both = messages(tmp_path, "[Program]\nObject=a.o\nSource=a.c\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    assert both == [f"{tmp_path}/a.unit:2: error: unit a: [Program]: exactly one of Object= and Source= is required"]
    neither = messages(tmp_path, "[Program]\nName=x\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    assert neither == [f"{tmp_path}/a.unit:2: error: unit a: [Program]: exactly one of Object= and Source= is required"]


def test_define_needs_source(tmp_path):
    got = messages(tmp_path, "[Program]\nObject=a.o\nDefine=X=1\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    assert got == [f"{tmp_path}/a.unit:3: error: unit a: Define= applies only to Source= programs"]


def test_missing_required_keys(tmp_path):
    got = messages(tmp_path, "[Unit]\nDescription=x\n")
    assert got == [f"{tmp_path}/a.unit:1: error: unit a: missing [Program], [Attach]"]
    got = messages(tmp_path, "[Program]\nObject=a.o\n[Attach]\nPosition=first\n")
    assert got == [f"{tmp_path}/a.unit:4: error: unit a: missing Hook= in [Attach]"]


def test_interface_names_too_long_or_with_slash(tmp_path):
    got = messages(tmp_path, "[Program]\nObject=a.o\n[Attach]\nHook=xdp\nInterfaces=averyveryverylongname a/b\n")
    assert len(got) == 2 and all("Interfaces=" in m and ":5:" in m for m in got)


def test_one_broken_unit_does_not_stop_others(tmp_path):
    write(tmp_path, "good.unit", "[Program]\nObject=a.o\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    write(tmp_path, "bad.unit", "[Attach\n")
    write(tmp_path, "binary.unit", "")
    (tmp_path / "binary.unit").write_bytes(b"\xff\xfe\x00garbage")
    result = load_units((tmp_path,))
    assert list(result.units) == ["good"]
    assert {d.location.path.name for d in result.errors} == {"bad.unit", "binary.unit"}


def test_invalid_unit_file_name(tmp_path):
    write(tmp_path, "-bad name.unit", "[Program]\nObject=a.o\n[Attach]\nHook=xdp\nInterfaces=veth0\n")
    result = load_units((tmp_path,))
    assert result.units == {}
    assert "invalid unit name" in result.errors[0].message
