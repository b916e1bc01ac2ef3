"""A BTF blob parsed into plain types (the kinds that describe data: no function prototypes needed).

Modifiers (typedef, const, volatile, restrict, type tag) are kept as `Alias` so that a type's name
(`__be32`) stays visible to the value codec, which takes byte order and address forms from names."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bpfunits.errors import BpfUnitsError

_MAGIC = 0xEB9F
(INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC,
 FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(1, 20)
_ALIASES = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}
_INT_SIGNED, _INT_CHAR, _INT_BOOL = 1, 2, 4


class BtfError(BpfUnitsError):
    """The BTF is malformed, or lacks a type the caller needs."""


@dataclass(frozen=True)
class Int:
    name: str
    size: int
    signed: bool
    char: bool
    bool: bool


@dataclass(frozen=True)
class Enum:
    name: str
    size: int
    signed: bool
    values: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Member:
    name: str
    type: int
    bit_offset: int
    bit_size: int  # 0 unless a bitfield


@dataclass(frozen=True)
class Composite:
    """A struct or a union."""

    name: str
    size: int
    union: bool
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Array:
    type: int
    length: int


@dataclass(frozen=True)
class Alias:
    """A typedef or a qualifier of `type`; `name` is the typedef's ('' for qualifiers)."""

    name: str
    type: int


@dataclass(frozen=True)
class Pointer:
    type: int


@dataclass(frozen=True)
class Var:
    name: str
    type: int


@dataclass(frozen=True)
class DataSec:
    name: str
    size: int
    vars: tuple[tuple[int, int, int], ...]  # (var type id, offset, size)


@dataclass(frozen=True)
class Other:
    """A kind values cannot be written to (functions, forward declarations, floats)."""

    kind: int
    name: str


BtfType = Int | Enum | Composite | Array | Alias | Pointer | Var | DataSec | Other


@dataclass(frozen=True)
class Btf:
    types: tuple[BtfType | None, ...]  # by id; id 0 (void) is None

    def get(self, type_id: int) -> BtfType:
        if not 0 < type_id < len(self.types):
            raise BtfError(f"BTF has no type {type_id}")
        t = self.types[type_id]
        assert t is not None
        return t

    def resolve(self, type_id: int) -> tuple[BtfType, tuple[str, ...]]:
        """The type behind typedefs and qualifiers, and the typedef names met on the way (outermost first)."""
        names: list[str] = []
        for _ in range(64):  # a cycle in a hostile object ends here
            t = self.get(type_id)
            if not isinstance(t, Alias):
                return t, tuple(names)
            if t.name:
                names.append(t.name)
            type_id = t.type
        raise BtfError("BTF typedefs loop")

    def integer(self, type_id: int) -> tuple[int, bool] | None:
        """(size in bytes, signed) when the type is an integer or an enum (through typedefs and
        qualifiers); None for any other type."""
        try:
            t, _ = self.resolve(type_id)
        except BtfError:
            return None
        return (t.size, t.signed) if isinstance(t, Int | Enum) else None

    def size(self, type_id: int) -> int:
        t, _ = self.resolve(type_id)
        if isinstance(t, Int | Enum | Composite):
            return t.size
        if isinstance(t, Array):
            return t.length * self.size(t.type)
        if isinstance(t, Pointer):
            return 8
        raise BtfError(f"type {type_id} has no size")

    def name(self, type_id: int) -> str:
        """A C spelling of the type, for messages: `__be32`, `struct prefix_v4`, `__u8[16]`."""
        t = self.get(type_id)
        if isinstance(t, Alias):
            return t.name or self.name(t.type)
        if isinstance(t, Composite):
            return f"{'union' if t.union else 'struct'} {t.name or '(anon)'}"
        if isinstance(t, Enum):
            return f"enum {t.name or '(anon)'}"
        if isinstance(t, Array):
            return f"{self.name(t.type)}[{t.length}]"
        if isinstance(t, Pointer):
            return f"{self.name(t.type) if t.type else 'void'} *"
        return t.name


def parse_btf(blob: bytes) -> Btf:
    try:
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", blob)
        if magic != _MAGIC:
            raise BtfError("not BTF (bad magic)")
        type_data = blob[hdr_len + type_off: hdr_len + type_off + type_len]
        strings = blob[hdr_len + str_off: hdr_len + str_off + str_len]
        types: list[BtfType | None] = [None]
        off = 0
        while off < len(type_data):
            t, off = _one(type_data, off, strings)
            types.append(t)
    except struct.error as exc:
        raise BtfError(f"malformed BTF ({exc})") from exc
    return Btf(tuple(types))


def _one(data: bytes, off: int, strings: bytes) -> tuple[BtfType, int]:
    name_off, info, size_or_type = struct.unpack_from("<III", data, off)
    off += 12
    kind, vlen, flag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
    name = string_at(strings, name_off)
    if kind == INT:
        enc, = struct.unpack_from("<I", data, off)
        e = enc >> 24
        # clang marks plain `char` signed, not CHAR: its name says it.
        char = bool(e & _INT_CHAR) or name == "char"
        return Int(name, size_or_type, bool(e & _INT_SIGNED), char, bool(e & _INT_BOOL)), off + 4
    if kind == ARRAY:
        elem, _index, length = struct.unpack_from("<III", data, off)
        return Array(elem, length), off + 12
    if kind in (STRUCT, UNION):
        members = []
        for _ in range(vlen):
            m_name, m_type, m_off = struct.unpack_from("<III", data, off)
            off += 12
            bit_off, bit_size = (m_off & 0xFFFFFF, m_off >> 24) if flag else (m_off, 0)
            members.append(Member(string_at(strings, m_name), m_type, bit_off, bit_size))
        return Composite(name, size_or_type, kind == UNION, tuple(members)), off
    if kind in (ENUM, ENUM64):
        values = []
        for _ in range(vlen):
            if kind == ENUM:
                v_name, raw = struct.unpack_from("<Ii" if flag else "<II", data, off)
                off += 8
            else:
                v_name, lo, hi = struct.unpack_from("<III", data, off)
                off += 12
                raw = (hi << 32) | lo
                if flag and raw >= 1 << 63:
                    raw -= 1 << 64
            values.append((string_at(strings, v_name), raw))
        return Enum(name, size_or_type, flag, tuple(values)), off
    if kind in _ALIASES:
        return Alias(name if kind == TYPEDEF else "", size_or_type), off
    if kind == PTR:
        return Pointer(size_or_type), off
    if kind == VAR:
        return Var(name, size_or_type), off + 4
    if kind == DATASEC:
        entries = []
        for _ in range(vlen):
            entries.append(struct.unpack_from("<III", data, off))
            off += 12
        return DataSec(name, size_or_type, tuple(entries)), off
    if kind == FUNC_PROTO:
        return Other(kind, name), off + 8 * vlen
    if kind == DECL_TAG:
        return Other(kind, name), off + 4
    if kind in (FWD, FUNC, FLOAT):
        return Other(kind, name), off
    raise BtfError(f"unknown BTF kind {kind}")


def string_at(strings: bytes, offset: int) -> str:
    end = strings.find(b"\0", offset)
    return strings[offset: end if end >= 0 else len(strings)].decode(errors="replace")
