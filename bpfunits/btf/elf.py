"""The least of an ELF64 little-endian relocatable object that BTF needs: sections by name and
the symbols in them (clang leaves global variables' offsets in BTF at 0; the symbol table has them)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bpfunits.errors import BpfUnitsError

_SHT_SYMTAB, _SHT_NOBITS = 2, 8
_HEADER_SIZE, _ELFCLASS64, _ELFDATA2LSB = 64, 2, 1


class ElfError(BpfUnitsError):
    """The bytes are not an ELF object this reader understands."""


@dataclass(frozen=True)
class Section:
    name: str
    size: int
    data: bytes  # empty for NOBITS (.bss)


@dataclass(frozen=True)
class Elf:
    sections: dict[str, Section]
    symbols: dict[tuple[str, str], int]  # (section, symbol name): offset in the section


def read_elf(data: bytes) -> Elf:
    if data[:4] != b"\x7fELF" or len(data) < _HEADER_SIZE or data[4] != _ELFCLASS64 or data[5] != _ELFDATA2LSB:
        raise ElfError("not a 64-bit little-endian ELF object")
    try:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        strtab = headers[shstrndx]
        names = data[strtab[4]: strtab[4] + strtab[5]]
        sections: list[Section] = []
        for h in headers:
            name = _cstr(names, h[0])
            body = b"" if h[1] == _SHT_NOBITS else data[h[4]: h[4] + h[5]]
            if h[1] != _SHT_NOBITS and len(body) != h[5]:
                raise ElfError(f"section {name} runs past the end of the file")
            sections.append(Section(name, h[5], body))
        symbols: dict[tuple[str, str], int] = {}
        for h in headers:
            if h[1] != _SHT_SYMTAB:
                continue
            symtab, symnames = data[h[4]: h[4] + h[5]], sections[h[6]].data
            for off in range(0, len(symtab) - 23, 24):
                st_name, _info, _other, shndx, value, _size = struct.unpack_from("<IBBHQQ", symtab, off)
                if 0 < shndx < len(sections) and st_name:
                    symbols[(sections[shndx].name, _cstr(symnames, st_name))] = value
    except (struct.error, IndexError) as exc:
        raise ElfError(f"malformed ELF headers ({exc})") from exc
    return Elf({s.name: s for s in sections if s.name}, symbols)


def _cstr(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    return table[offset: end if end >= 0 else len(table)].decode(errors="replace")
