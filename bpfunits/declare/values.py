"""Declared values to bytes and back, typed by BTF.

Integers (decimal or 0x hex, range-checked), bools, enums by enumerator name, char arrays as strings,
arrays as lists, structs and unions by member, IPv4/IPv6 addresses into __be32, __u8[4], __u8[16] and
struct in6_addr, MAC addresses into __u8[6], prefixes (`198.19.66.0/24`) into LPM-trie keys
{prefixlen, addr}, and `hex:` raw bytes for any type. Byte order is the host's (little-endian), except
for types named __be16/__be32/__be64. Decoding takes the declaration as a hint of the form to show
(`0x28` reads back as hex, an address as an address), so a value reads back as it was written."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from bpfunits.btf.types import Array, Btf, Composite, Enum, Int
from bpfunits.declare.syntax import Value
from bpfunits.errors import BpfUnitsError

_BIG_ENDIAN = frozenset({"__be16", "__be32", "__be64"})
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")
_IPV4, _IPV6, _MAC_LEN = 4, 16, 6  # bytes
_PREFIXLEN = 4  # an LPM-trie key starts with a host-order u32 prefix length
# A prefix's address rendered when no declaration hints the form (an LPM key the kernel holds).
PREFIX_HINT: Value = "0.0.0.0/0"


class BadValue(BpfUnitsError):
    """A value does not fit its type; `path` is where in the value (`config.rate`, `[2]`)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def encode(btf: Btf, type_id: int, value: Value, path: str = "") -> bytes:
    size = btf.size(type_id)
    if isinstance(value, str) and value.startswith("hex:"):
        return _raw(value, size, btf.name(type_id), path)
    t, names = btf.resolve(type_id)
    if isinstance(t, Int):
        return _int(t, names, value, btf.name(type_id), path)
    if isinstance(t, Enum):
        return _enum(t, value, path)
    if isinstance(t, Array):
        return _array(btf, type_id, t, value, path)
    if isinstance(t, Composite):
        return _composite(btf, type_id, t, value, path)
    raise BadValue(f"a value of type {btf.name(type_id)} cannot be declared", path)


def decode(btf: Btf, type_id: int, data: bytes, like: Value | None = None) -> Value:
    """The value `data` holds, in the form of the declaration `like` when given."""
    if isinstance(like, str) and like.startswith("hex:"):
        return "hex:" + data.hex()
    t, names = btf.resolve(type_id)
    if isinstance(t, Int):
        big = bool(_BIG_ENDIAN.intersection(names))
        n = int.from_bytes(data, "big" if big else "little", signed=t.signed)
        if t.bool:
            return "true" if n else "false"
        if big and t.size == _IPV4 and (like is None or _is_ipv4(like)):
            return str(ipaddress.IPv4Address(n))
        return _hex(n) if isinstance(like, str) and like.lower().lstrip("-").startswith("0x") else str(n)
    if isinstance(t, Enum):
        n = int.from_bytes(data, "little", signed=t.signed)
        return next((name for name, v in t.values if v == n), str(n))
    if isinstance(t, Array):
        return _decode_array(btf, t, data, like)
    if isinstance(t, Composite):
        return _decode_composite(btf, type_id, t, data, like)
    return "hex:" + data.hex()


def _raw(value: str, size: int, type_name: str, path: str) -> bytes:
    try:
        raw = bytes.fromhex(value[4:])
    except ValueError:
        raise BadValue(f"{value!r} is not hex bytes", path) from None
    if len(raw) != size:
        raise BadValue(f"{value!r} is {len(raw)} bytes, {type_name} is {size}", path)
    return raw


def _int(t: Int, names: tuple[str, ...], value: Value, type_name: str, path: str) -> bytes:
    if not isinstance(value, str):
        raise BadValue(f"{type_name} takes a single value, not a {_shape(value)}", path)
    big = bool(_BIG_ENDIAN.intersection(names))
    if t.bool:
        if value.lower() not in _TRUE + _FALSE + ("1", "0"):
            raise BadValue(f"{value!r} is not a bool (true or false)", path)
        return bytes([value.lower() in _TRUE + ("1",)]) + bytes(t.size - 1)
    if big and t.size == _IPV4 and _is_ipv4(value):
        return ipaddress.IPv4Address(value).packed
    try:
        n = int(value, 0)
    except ValueError:
        hint = " or an IPv4 address" if big and t.size == _IPV4 else ""
        raise BadValue(f"{value!r} is not an integer{hint} ({type_name})", path) from None
    low, high = (-(1 << (8 * t.size - 1)), (1 << (8 * t.size - 1)) - 1) if t.signed else (0, (1 << 8 * t.size) - 1)
    if not low <= n <= high:
        raise BadValue(f"{value} does not fit {type_name} ({low}..{high})", path)
    return n.to_bytes(t.size, "big" if big else "little", signed=t.signed)


def _enum(t: Enum, value: Value, path: str) -> bytes:
    names = dict(t.values)
    label = f"enum {t.name or '(anon)'}"
    if not isinstance(value, str):
        raise BadValue(f"{label} takes a single value, not a {_shape(value)}", path)
    if value in names:
        n = names[value]
    else:
        try:
            n = int(value, 0)
        except ValueError:
            raise BadValue(f"{label} has no enumerator {value!r}; it has: {', '.join(names)}", path) from None
        if n not in names.values():
            raise BadValue(f"{value} is not a value of {label}; it has: {', '.join(names)}", path)
    return n.to_bytes(t.size, "little", signed=n < 0)


def _element(btf: Btf, t: Array) -> Int | None:
    elem, _ = btf.resolve(t.type)
    return elem if isinstance(elem, Int) and elem.size == 1 else None


def _array(btf: Btf, type_id: int, t: Array, value: Value, path: str) -> bytes:
    type_name = btf.name(type_id)
    byte = _element(btf, t)
    if isinstance(value, str) and byte is not None:
        if byte.char:
            raw = value.encode()
            if len(raw) > t.length:
                raise BadValue(f"{value!r} is {len(raw)} bytes, {type_name} holds {t.length}", path)
            return raw + bytes(t.length - len(raw))
        address = _address_bytes(value, t.length)
        if address is not None:
            return address
        forms = {4: "an IPv4 address", 16: "an IPv6 address", 6: "a MAC address (02:00:00:00:00:01)"}
        form = f"{forms[t.length]}, " if t.length in forms else ""
        raise BadValue(f"{value!r} does not fit {type_name}: give {form}a list [...] or hex:...", path)
    if not isinstance(value, list):
        raise BadValue(f"{type_name} takes a list [...], not {_describe(value)}", path)
    if len(value) != t.length:
        raise BadValue(f"{type_name} holds {t.length} items, {len(value)} given", path)
    return b"".join(encode(btf, t.type, v, f"{path}[{i}]") for i, v in enumerate(value))


def _address_bytes(value: str, length: int) -> bytes | None:
    if length == _IPV4 and _is_ipv4(value):
        return ipaddress.IPv4Address(value).packed
    if length == _IPV6 and _is_ipv6(value):
        return ipaddress.IPv6Address(value).packed
    if length == _MAC_LEN and _MAC.fullmatch(value):
        return bytes.fromhex(value.replace(":", ""))
    return None


def _composite(btf: Btf, type_id: int, t: Composite, value: Value, path: str) -> bytes:
    type_name = btf.name(type_id)
    if isinstance(value, str):
        if t.size == _IPV6 and _is_ipv6(value):  # struct in6_addr
            return ipaddress.IPv6Address(value).packed
        if "/" in value and (prefix := _prefix_members(btf, t)) is not None:
            return _prefix(btf, t, prefix, value, type_name, path)
        raise BadValue(f"{type_name} takes {{member=value ...}}, not {value!r}", path)
    if not isinstance(value, dict):
        raise BadValue(f"{type_name} takes {{member=value ...}}, not a list", path)
    by_name = {m.name: m for m in t.members}
    unknown = [k for k in value if k not in by_name]
    if unknown:
        raise BadValue(f"{type_name} has no member {unknown[0]!r}; its members: {', '.join(by_name)}", path)
    if t.union and len(value) > 1:
        raise BadValue(f"{type_name} is a union: give one of its members, not {len(value)}", path)
    out = bytearray(t.size)
    for name, v in value.items():
        m = by_name[name]
        where = f"{path}.{name}" if path else name
        if m.bit_size:
            raise BadValue("bitfield members cannot be declared; write the struct as hex:...", where)
        raw = encode(btf, m.type, v, where)
        start = m.bit_offset // 8
        out[start: start + len(raw)] = raw
    return bytes(out)


def _prefix_members(btf: Btf, t: Composite) -> tuple[int, int] | None:
    """(prefixlen member type, address member type) when `t` is an LPM-trie key {u32 prefixlen; addr}."""
    if t.union or len(t.members) != 2:  # noqa: PLR2004
        return None
    length, _ = btf.resolve(t.members[0].type)
    if not isinstance(length, Int) or length.size != _PREFIXLEN or t.members[1].bit_offset != 8 * _PREFIXLEN:
        return None
    return t.members[0].type, t.members[1].type


def _prefix(btf: Btf, t: Composite, members: tuple[int, int], value: str, type_name: str, path: str) -> bytes:
    addr_size = btf.size(members[1])
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise BadValue(f"{value!r} is not a prefix (198.19.66.0/24, 2001:db8::/32)", path) from None
    if network.max_prefixlen // 8 != addr_size:
        raise BadValue(f"{value!r} does not fit {type_name}: its address is {addr_size} bytes", path)
    if not _parses(lambda v: ipaddress.ip_network(v, strict=True), value):
        raise BadValue(f"{value!r} has host bits set; the prefix is {network}", path)
    return (network.prefixlen.to_bytes(_PREFIXLEN, "little") + network.network_address.packed
            + bytes(t.size - _PREFIXLEN - addr_size))


def _decode_array(btf: Btf, t: Array, data: bytes, like: Value | None) -> Value:
    byte = _element(btf, t)
    if byte is not None and (like is None or isinstance(like, str)):
        if byte.char:
            text, _, rest = data.partition(b"\0")
            if not rest.strip(b"\0"):
                try:
                    return text.decode()
                except UnicodeDecodeError:
                    pass
        elif isinstance(like, str):
            if t.length == _IPV4 and _is_ipv4(like):
                return str(ipaddress.IPv4Address(data))
            if t.length == _IPV6 and _is_ipv6(like):
                return str(ipaddress.IPv6Address(data))
            if t.length == _MAC_LEN and _MAC.fullmatch(like):
                return ":".join(f"{b:02x}" for b in data)
    size = btf.size(t.type)
    hints = like if isinstance(like, list) and len(like) == t.length else [None] * t.length
    return [decode(btf, t.type, data[i * size:(i + 1) * size], hints[i]) for i in range(t.length)]


def _decode_composite(btf: Btf, type_id: int, t: Composite, data: bytes, like: Value | None) -> Value:
    if isinstance(like, str) and "/" in like and (prefix := _prefix_members(btf, t)) is not None:
        length = int.from_bytes(data[:_PREFIXLEN], "little")
        addr = data[_PREFIXLEN: _PREFIXLEN + btf.size(prefix[1])]
        return f"{ipaddress.ip_address(addr)}/{length}" if len(addr) in (_IPV4, _IPV6) else "hex:" + data.hex()
    if t.size == _IPV6 and (like is None or (isinstance(like, str) and _is_ipv6(like))) and t.name == "in6_addr":
        return str(ipaddress.IPv6Address(data))
    hints = like if isinstance(like, dict) else {}
    members = [m for m in t.members if not t.union or m.name in hints] or list(t.members[:1])
    out: dict[str, Value] = {}
    for m in members:
        if m.bit_size:
            return "hex:" + data.hex()
        start = m.bit_offset // 8
        out[m.name] = decode(btf, m.type, data[start: start + btf.size(m.type)], hints.get(m.name))
    return out


def _is_ipv4(value: Value) -> bool:
    dotted_quad = isinstance(value, str) and value.count(".") == 3  # noqa: PLR2004 (not 10.1, an integer)
    return dotted_quad and _parses(ipaddress.IPv4Address, str(value))


def _is_ipv6(value: Value) -> bool:
    return isinstance(value, str) and ":" in value and _parses(ipaddress.IPv6Address, value)


def _parses(kind: Callable[[str], object], value: str) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def _hex(n: int) -> str:
    return f"-0x{-n:x}" if n < 0 else f"0x{n:x}"


def _shape(value: Value) -> str:
    return "list" if isinstance(value, list) else "struct"


def _describe(value: Value) -> str:
    return repr(value) if isinstance(value, str) else f"a {_shape(value)}"

