"""Where a function of an ELF binary starts in its file: the offset a uprobe takes."""

from __future__ import annotations

import struct
from pathlib import Path

from bpfunits.errors import BpfUnitsError
from bpfunits.untrusted import UntrustedFileError, read_untrusted

_SHT_SYMTAB, _SHT_DYNSYM, _PT_LOAD = 2, 11, 1
_ELF64_LE = b"\x7fELF\x02\x01"  # magic, ELFCLASS64, ELFDATA2LSB


class SymbolError(BpfUnitsError):
    pass


MAX_SIZE = 256 << 20  # a binary to probe: far larger than any library, and read into memory once
_SYM_SIZE = 24  # sizeof(Elf64_Sym)


def file_offset(path: str | Path, symbol: str) -> int:
    """The file offset of `symbol` (its address, through the loadable segment holding it) in the
    64-bit little-endian ELF at `path`: a regular file of at most MAX_SIZE bytes, any content of
    which is a SymbolError at worst."""
    try:
        data = read_untrusted(Path(path), MAX_SIZE, strict=False)
    except UntrustedFileError as e:
        raise SymbolError(f"uprobe binary: {e}") from e
    if data[:6] != _ELF64_LE:
        raise SymbolError(f"uprobe binary {path}: not a 64-bit little-endian ELF file")
    try:
        address = _symbol_address(data, symbol)
        if address is None:
            raise SymbolError(f"uprobe binary {path} has no symbol {symbol}")
        phoff = struct.unpack_from("<Q", data, 0x20)[0]
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        for i in range(phnum):
            segment = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = segment
            if p_type == _PT_LOAD and p_vaddr <= address < p_vaddr + p_filesz:
                return address - p_vaddr + p_offset
    except (struct.error, IndexError, ValueError, OverflowError) as e:
        # OverflowError: an offset in the file past what an index can be (2^63 and more).
        raise SymbolError(f"uprobe binary {path}: not a valid ELF file ({e})") from e
    raise SymbolError(f"uprobe binary {path}: symbol {symbol} ({address:#x}) lies in no loadable segment")


def _symbol_address(data: bytes, symbol: str) -> int | None:
    """The value of `symbol` in the symbol tables (struct.error, IndexError, ValueError or
    OverflowError where the file says things it does not hold)."""
    wanted = symbol.encode()
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type not in (_SHT_SYMTAB, _SHT_DYNSYM):
            continue
        if entsize < _SYM_SIZE or offset + size > len(data):
            raise ValueError(f"a symbol table of {size} bytes at {offset}, entries of {entsize}")
        strings = sections[link][4]
        for at in range(offset, offset + size - _SYM_SIZE + 1, entsize):
            name_off, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, at)
            start = strings + name_off
            if value and data[start:data.index(b"\0", start)] == wanted:
                return value
    return None
