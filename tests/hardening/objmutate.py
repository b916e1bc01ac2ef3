"""Mutating BPF ELF objects for fuzzing: byte flips anywhere or inside one kind of section (BTF,
BTF.ext, relocations, symbols, maps, code), sections cut short, relocations pointing nowhere, files
cut short. Each mutation is data, so hypothesis can draw and shrink them and a seed can replay them."""

from __future__ import annotations

import random
import struct
from contextlib import suppress
from dataclasses import dataclass

_SHDR = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr: name type flags addr offset size link info align entsize
SHT_REL = 9
KINDS = ("any", ".BTF", ".BTF.ext", "rel", ".symtab", ".maps", "code", "strtab")


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    header: int  # file offset of its header
    offset: int
    size: int
    entsize: int


def sections(data: bytes) -> list[Section]:
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    headers = [(shoff + i * _SHDR.size, _SHDR.unpack_from(data, shoff + i * _SHDR.size)) for i in range(shnum)]
    names = headers[shstrndx][1][4]
    out = []
    for header, (name, kind, _, _, offset, size, _, _, _, entsize) in headers:
        end = data.index(b"\0", names + name)
        out.append(Section(data[names + name : end].decode(), kind, header, offset, size, entsize))
    return out


def _of_kind(data: bytes, kind: str) -> list[Section]:
    def matches(s: Section) -> bool:
        if kind == "rel":
            return s.type == SHT_REL
        if kind == "code":
            return s.type == 1 and not s.name.startswith((".", "license"))
        if kind == "strtab":
            return s.name in (".strtab", ".shstrtab")
        return s.name == kind
    return [s for s in sections(data) if matches(s) and s.size and s.offset + s.size <= len(data)]


@dataclass(frozen=True)
class Flip:
    """Set one byte: at `where` (a fraction) of the file, or of a section of `kind`."""

    kind: str
    where: float
    value: int

    def apply(self, data: bytearray) -> bytearray:
        found = _of_kind(data, self.kind) if self.kind != "any" else []
        start, size = (found[0].offset, found[0].size) if found else (0, len(data))
        data[start + min(int(self.where * size), size - 1)] = self.value
        return data


@dataclass(frozen=True)
class CutSection:
    """Declare a section of `kind` shorter (or longer) than it is: sh_size times `factor`."""

    kind: str
    factor: float

    def apply(self, data: bytearray) -> bytearray:
        for s in _of_kind(data, self.kind)[:1]:
            struct.pack_into("<Q", data, s.header + 32, int(s.size * self.factor))
        return data


@dataclass(frozen=True)
class BadRelocation:
    """Point relocation `index` (of the first relocation section) at symbol `symbol` and offset `offset`."""

    index: int
    symbol: int
    offset: int

    def apply(self, data: bytearray) -> bytearray:
        for s in _of_kind(data, "rel")[:1]:
            entry = s.offset + (self.index % max(s.size // 16, 1)) * 16
            struct.pack_into("<QQ", data, entry, self.offset, (self.symbol << 32) | 1)
        return data


@dataclass(frozen=True)
class Truncate:
    """Keep `keep` (a fraction) of the file."""

    keep: float

    def apply(self, data: bytearray) -> bytearray:
        return data[: int(len(data) * self.keep)]


Mutation = Flip | CutSection | BadRelocation | Truncate


def mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    out = bytearray(data)
    for m in mutations:
        # An earlier mutation may have broken the headers this one reads: then it stays as it is.
        with suppress(struct.error, ValueError, IndexError):
            out = m.apply(out)
    return bytes(out)


def seeded(seed: int) -> list[Mutation]:
    """One to four mutations, replayable from `seed`."""
    rng = random.Random(seed)
    choices = [
        lambda: Flip(rng.choice(KINDS), rng.random(), rng.randrange(256)),
        lambda: CutSection(rng.choice(KINDS[1:]), rng.choice([0.0, 0.5, 0.9, 1.5, 1000.0])),
        lambda: BadRelocation(rng.randrange(64), rng.randrange(1 << 16), rng.randrange(1 << 16)),
        lambda: Truncate(rng.random()),
    ]
    return [rng.choice(choices)() for _ in range(rng.randint(1, 4))]
