"""The BTF value codec over the shapes of bpf/declared_shapes.bpf.o: encodings, exact errors, and a
property test that what is written reads back as written."""

from __future__ import annotations

import ipaddress
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfunits.btf.objects import ObjectBtf, object_btf
from bpfunits.btf.types import Array, Composite, Enum, Int
from bpfunits.declare import syntax
from bpfunits.declare.syntax import Value, parse_value, render
from bpfunits.declare.values import BadValue, decode, encode

OBJECT = Path(__file__).parents[2] / "bpf" / "declared_shapes.bpf.o"
OBJ: ObjectBtf = object_btf(OBJECT.read_bytes())
BTF = OBJ.btf
SHAPES = OBJ.maps["shapes"].value


def member(name: str) -> int:
    t, _ = BTF.resolve(SHAPES)
    assert isinstance(t, Composite)
    return next(m.type for m in t.members if m.name == name)


def enc(type_id: int, text: str) -> bytes:
    return encode(BTF, type_id, parse_value(text))


def test_object_lists_maps_and_globals_of_every_section():
    assert set(OBJ.maps) == {"shapes", "lpm_v4", "lpm_v6", "per_cpu"}
    assert OBJ.maps["per_cpu"].per_cpu and OBJ.maps["lpm_v4"].lpm
    sections = {g.name: (g.section, g.offset) for g in OBJ.globals.values()}
    assert sections["verdict"] == (".rodata", 0)
    assert sections["rodata_port"] == (".rodata", 4)
    assert sections["data_verdict"] == (".data", 0)
    assert sections["bss_verdict"] == (".bss", 0)
    assert sections["custom_verdict"] == (".data.custom", 0)
    assert sections["custom_limit"] == (".rodata.custom", 0)


@pytest.mark.parametrize(("name", "text", "raw"), [
    ("u8", "255", b"\xff"),
    ("s8", "-128", b"\x80"),
    ("u16", "0x1234", b"\x34\x12"),
    ("s16", "-2", b"\xfe\xff"),
    ("u32", "4294967295", b"\xff\xff\xff\xff"),
    ("s32", "-1", b"\xff\xff\xff\xff"),
    ("u64", "0xffffffffffffffff", b"\xff" * 8),
    ("s64", "-9223372036854775808", b"\0" * 7 + b"\x80"),
    ("flag", "true", b"\x01"),
    ("flag", "no", b"\x00"),
    ("action", "ACTION_DENY", b"\x02\0\0\0"),
    ("action", "0x10", b"\x10\0\0\0"),
    ("name", "eth0", b"eth0\0\0\0\0"),
    ("name", '"a b"', b"a b\0\0\0\0\0"),
    ("list", "[1 2 0x3]", b"\1\0\0\0\2\0\0\0\3\0\0\0"),
    ("inner", "{port=80 nport=80 delta=-1}", b"\x50\x00\x00\x50\xff\0"),
    ("inner", "{nport=443}", b"\0\0\x01\xbb\0\0"),
    ("pair", "[{port=1} {delta=2}]", b"\1\0\0\0\0\0" + b"\0\0\0\0\2\0"),
    ("either", "{number=1}", b"\1\0\0\0"),
    ("either", "{bytes=[1 2 3 4]}", b"\1\2\3\4"),
    ("addr4", "198.19.66.1", bytes([198, 19, 66, 1])),
    ("addr4", "0x01020304", b"\1\2\3\4"),
    ("raw4", "10.0.0.1", b"\x0a\0\0\x01"),
    ("raw6", "2001:db8::1", ipaddress.IPv6Address("2001:db8::1").packed),
    ("in6", "::1", b"\0" * 15 + b"\1"),
    ("mac", "02:00:00:aa:bb:CC", bytes.fromhex("020000aabbcc")),
    ("mac", "hex:0102030405ff", bytes.fromhex("0102030405ff")),
])
def test_encodes_by_type(name, text, raw):
    assert enc(member(name), text) == raw


def test_lpm_keys_from_prefixes():
    assert enc(OBJ.maps["lpm_v4"].key, "198.19.66.0/24") == b"\x18\0\0\0" + bytes([198, 19, 66, 0])
    assert enc(OBJ.maps["lpm_v6"].key, "2001:db8::/32") == b"\x20\0\0\0" + bytes.fromhex("20010db8") + bytes(12)
    assert enc(OBJ.maps["lpm_v4"].key, "{prefixlen=8 addr=10.0.0.0}") == b"\x08\0\0\0\x0a\0\0\0"
    assert decode(BTF, OBJ.maps["lpm_v4"].key, b"\x18\0\0\0" + bytes([198, 19, 66, 0]), "0.0.0.0/0") == "198.19.66.0/24"


def test_struct_with_members_by_name():
    raw = enc(SHAPES, "{u8=1 inner={port=2} mac=02:00:00:00:00:01}")
    assert len(raw) == BTF.size(SHAPES)
    value = decode(BTF, SHAPES, raw, parse_value("{u8=1 inner={port=2} mac=02:00:00:00:00:01}"))
    assert isinstance(value, dict)
    assert value["u8"] == "1" and value["mac"] == "02:00:00:00:00:01" and value["inner"] == {
        "port": "2", "nport": "0", "delta": "0"}


@pytest.mark.parametrize(("name", "text", "message"), [
    ("u8", "256", "256 does not fit __u8 (0..255)"),
    ("s8", "-129", "-129 does not fit __s8 (-128..127)"),
    ("u16", "-1", "-1 does not fit __u16 (0..65535)"),
    ("u32", "ten", "'ten' is not an integer (__u32)"),
    ("addr4", "300.1.1.1", "'300.1.1.1' is not an integer or an IPv4 address (__be32)"),
    ("u32", "[1]", "__u32 takes a single value, not a list"),
    ("flag", "maybe", "'maybe' is not a bool (true or false)"),
    ("action", "ACTION_DROP", "enum action has no enumerator 'ACTION_DROP'; it has: ACTION_ALLOW, ACTION_DENY, ACTION_LOG"),
    ("action", "3", "3 is not a value of enum action; it has: ACTION_ALLOW, ACTION_DENY, ACTION_LOG"),
    ("name", "waytoolongname", "'waytoolongname' is 14 bytes, char[8] holds 8"),
    ("list", "[1 2]", "__u32[3] holds 3 items, 2 given"),
    ("list", "7", "__u32[3] takes a list [...], not '7'"),
    ("list", "[1 2 x]", "[2]: 'x' is not an integer (__u32)"),
    ("raw4", "1.2.3", "'1.2.3' does not fit __u8[4]: give an IPv4 address, a list [...] or hex:..."),
    ("mac", "02:00:00:00:00", "'02:00:00:00:00' does not fit __u8[6]: give a MAC address (02:00:00:00:00:01), a list [...] or hex:..."),
    ("inner", "{port=1 dport=2}", "struct inner has no member 'dport'; its members: port, nport, delta"),
    ("inner", "{port=70000}", "port: 70000 does not fit __u16 (0..65535)"),
    ("pair", "[{port=1} {delta=200}]", "[1].delta: 200 does not fit __s8 (-128..127)"),
    ("either", "{number=1 bytes=[1 2 3 4]}", "union either is a union: give one of its members, not 2"),
    ("inner", "80", "struct inner takes {member=value ...}, not '80'"),
    ("mac", "hex:0102", "'hex:0102' is 2 bytes, __u8[6] is 6"),
    ("mac", "hex:zz", "'hex:zz' is not hex bytes"),
])
def test_misuse_is_an_exact_error(name, text, message):
    with pytest.raises(BadValue) as e:
        enc(member(name), text)
    assert str(e.value) == message


@pytest.mark.parametrize(("text", "message"), [
    ("198.19.66.1/24", "'198.19.66.1/24' has host bits set; the prefix is 198.19.66.0/24"),
    ("2001:db8::/32", "'2001:db8::/32' does not fit struct prefix_v4: its address is 4 bytes"),
    ("10.0.0.0/33", "'10.0.0.0/33' is not a prefix (198.19.66.0/24, 2001:db8::/32)"),
])
def test_prefix_misuse(text, message):
    with pytest.raises(BadValue) as e:
        enc(OBJ.maps["lpm_v4"].key, text)
    assert str(e.value) == message


# --- property: any declared value reads back as declared ------------------------------------------

_DEPTH = 4


def values_of(type_id: int, depth: int = 0) -> st.SearchStrategy[Value]:
    """Declarations of the type in their canonical written form."""
    t, names = BTF.resolve(type_id)
    if isinstance(t, Int):
        if t.bool:
            return st.sampled_from(["true", "false"])
        bits = 8 * t.size
        low, high = (-(1 << bits - 1), (1 << bits - 1) - 1) if t.signed else (0, (1 << bits) - 1)
        if "__be32" in names:
            return st.integers(0, high).map(lambda n: str(ipaddress.IPv4Address(n)))
        numbers = st.integers(low, high)
        return st.one_of(numbers.map(str), numbers.map(lambda n: f"-0x{-n:x}" if n < 0 else f"0x{n:x}"))
    if isinstance(t, Enum):
        return st.sampled_from([name for name, _ in t.values])
    if isinstance(t, Array):
        elem, _ = BTF.resolve(t.type)
        if isinstance(elem, Int) and elem.char:
            return st.text(string.ascii_letters + string.digits + " _-", max_size=t.length)
        items = st.lists(values_of(t.type, depth + 1), min_size=t.length, max_size=t.length)
        if isinstance(elem, Int) and elem.size == 1 and t.length in (4, 6, 16):
            as_bytes = st.binary(min_size=t.length, max_size=t.length)
            form = {4: lambda b: str(ipaddress.IPv4Address(b)), 16: lambda b: str(ipaddress.IPv6Address(b)),
                    6: lambda b: ":".join(f"{x:02x}" for x in b)}[t.length]
            return st.one_of(items, as_bytes.map(form), as_bytes.map(lambda b: "hex:" + b.hex()))
        return items
    if isinstance(t, Composite):
        if t.name == "in6_addr":
            return st.binary(min_size=16, max_size=16).map(lambda b: str(ipaddress.IPv6Address(b)))
        if t.union:
            return st.one_of(*(values_of(m.type, depth + 1).map(lambda v, n=m.name: {n: v}) for m in t.members))
        return st.fixed_dictionaries({m.name: values_of(m.type, depth + 1) for m in t.members})
    raise AssertionError(f"no strategy for {t}")


_TYPES = [SHAPES, OBJ.maps["lpm_v4"].value, OBJ.maps["lpm_v6"].value, OBJ.maps["per_cpu"].value,
          *(g.type for g in OBJ.globals.values())]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_TYPES).flatmap(lambda t: st.tuples(st.just(t), values_of(t))))
def test_a_declared_value_reads_back_as_declared(typed):
    type_id, value = typed
    text = render(value)
    assert parse_value(text) == value
    raw = encode(BTF, type_id, parse_value(text))
    assert len(raw) == BTF.size(type_id)
    assert decode(BTF, type_id, raw, value) == value


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["lpm_v4", "lpm_v6"]).flatmap(
    lambda m: st.tuples(st.just(m), st.integers(0, 32 if m == "lpm_v4" else 128), st.binary(min_size=16, max_size=16))))
def test_a_prefix_reads_back_as_declared(case):
    name, length, raw = case
    width = 32 if name == "lpm_v4" else 128
    addr = raw[: width // 8]
    net = ipaddress.ip_network((int.from_bytes(addr, "big") >> (width - length) << (width - length) if length else 0,
                                length)) if width == 32 else ipaddress.IPv6Network(
        ((int.from_bytes(addr, "big") >> (width - length) << (width - length)) if length else 0, length))
    text = str(net)
    key = OBJ.maps[name].key
    assert decode(BTF, key, encode(BTF, key, text), "0.0.0.0/0") == text


@pytest.mark.parametrize("opening, closing", [("{a=", "}"), ("[", "]")])
def test_values_nested_without_end_are_a_syntax_problem(opening, closing):
    # A unit file may be written by anyone who can write the folder: never a RecursionError.
    for depth in (syntax.MAX_DEPTH + 1, 100_000):
        with pytest.raises(syntax.SyntaxProblem, match=f"nest deeper than {syntax.MAX_DEPTH} levels"):
            syntax.parse_value(opening * depth + "1" + closing * depth)
    assert syntax.parse_value(opening * syntax.MAX_DEPTH + "1" + closing * syntax.MAX_DEPTH)
