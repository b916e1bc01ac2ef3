"""Where a function of an ELF binary starts in its file: the offset a uprobe takes."""

from __future__ import annotations

import struct
from pathlib import Path

from bpfunits.errors import BpfUnitsError

_SHT_SYMTAB, _SHT_DYNSYM, _PT_LOAD = 2, 11, 1
_ELF64_LE = b"\x7fELF\x02\x01"  # magic, ELFCLASS64, ELFDATA2LSB


class SymbolError(BpfUnitsError):
    pass


def file_offset(path: str | Path, symbol: str) -> int:
    """The file offset of `symbol` (its address, through the loadable segment holding it) in the
    64-bit little-endian ELF at `path`."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SymbolError(f"uprobe binary {path}: {e.strerror}") from e
    if data[:6] != _ELF64_LE:
        raise SymbolError(f"uprobe binary {path}: not a 64-bit little-endian ELF file")
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    address = None
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type not in (_SHT_SYMTAB, _SHT_DYNSYM) or not entsize:
            continue
        strtab = sections[link]
        for at in range(offset, offset + size, entsize):
            name_off, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, at)
            start = strtab[4] + name_off
            if value and data[start:data.index(b"\0", start)].decode(errors="replace") == symbol:
                address = value
                break
        if address is not None:
            break
    if address is None:
        raise SymbolError(f"uprobe binary {path} has no symbol {symbol}")
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == _PT_LOAD and p_vaddr <= address < p_vaddr + p_filesz:
            return address - p_vaddr + p_offset
    raise SymbolError(f"uprobe binary {path}: symbol {symbol} ({address:#x}) lies in no loadable segment")
