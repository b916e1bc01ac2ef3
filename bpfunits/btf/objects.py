"""What an object's BTF says about the data a unit may declare: its maps' key and value types, and its
global variables (with the data section and offset each lives at)."""

from __future__ import annotations

from dataclasses import dataclass

from bpfunits.btf.elf import Elf, read_elf
from bpfunits.btf.types import Array, Btf, BtfError, Composite, DataSec, Pointer, Var, parse_btf

# libbpf turns these sections into maps whose initial value it writes before load (.rodata, frozen after).
GLOBAL_SECTIONS = (".rodata", ".data", ".bss")
MAP_TYPE_LPM_TRIE = 11
PER_CPU_MAP_TYPES = frozenset({5, 6, 10})  # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH


@dataclass(frozen=True)
class MapType:
    name: str
    type: int  # BPF_MAP_TYPE_*
    key: int  # BTF type ids
    value: int

    @property
    def per_cpu(self) -> bool:
        return self.type in PER_CPU_MAP_TYPES

    @property
    def lpm(self) -> bool:
        return self.type == MAP_TYPE_LPM_TRIE


@dataclass(frozen=True)
class Global:
    name: str
    section: str  # .rodata, .data, .bss, .data.NAME, .rodata.NAME
    offset: int
    type: int


@dataclass(frozen=True)
class ObjectBtf:
    btf: Btf
    maps: dict[str, MapType]
    globals: dict[str, Global]
    datasecs: dict[str, int]  # section name: its DATASEC type id (libbpf's internal map's BTF value type)
    images: dict[str, bytes]  # section name: its initial bytes, as libbpf loads them (zeros for .bss)


def is_global_section(name: str) -> bool:
    return name in GLOBAL_SECTIONS or name.startswith((".data.", ".rodata."))


def object_btf(data: bytes) -> ObjectBtf:
    """The maps and globals of an ELF object's BTF; BtfError if it has none."""
    elf = read_elf(data)
    section = elf.sections.get(".BTF")
    if section is None:
        raise BtfError("the object has no BTF (build it with clang -g)")
    btf = parse_btf(section.data)
    maps: dict[str, MapType] = {}
    globals_: dict[str, Global] = {}
    datasecs: dict[str, int] = {}
    for type_id, t in enumerate(btf.types):
        if not isinstance(t, DataSec):
            continue
        if t.name == ".maps":
            for var_id, _, _ in t.vars:
                var = btf.get(var_id)
                if isinstance(var, Var) and (m := _map_type(btf, var)) is not None:
                    maps[var.name] = m
        elif is_global_section(t.name):
            datasecs[t.name] = type_id
            for var_id, offset, _ in t.vars:
                var = btf.get(var_id)
                if isinstance(var, Var):
                    at = _symbol_offset(elf, t.name, var.name, offset)
                    globals_[var.name] = Global(var.name, t.name, at, var.type)
    images = {name: s.data or bytes(s.size) for name, s in elf.sections.items() if name in datasecs}
    return ObjectBtf(btf, maps, globals_, datasecs, images)


def _symbol_offset(elf: Elf, section: str, name: str, btf_offset: int) -> int:
    # clang writes 0 for every variable's offset; libbpf takes it from the symbol, as here.
    return elf.symbols.get((section, name), btf_offset)


def _map_type(btf: Btf, var: Var) -> MapType | None:
    """A BTF-defined map (`struct { __uint(type, ...); __type(key, ...); ... } name SEC(".maps")`)."""
    definition, _ = btf.resolve(var.type)
    if not isinstance(definition, Composite):
        return None
    fields: dict[str, int] = {}
    for m in definition.members:
        pointer, _ = btf.resolve(m.type)
        if isinstance(pointer, Pointer):
            fields[m.name] = pointer.type
    if "type" not in fields or "key" not in fields or "value" not in fields:
        return None  # a map without typed key and value: nothing can be declared in it
    kind, _ = btf.resolve(fields["type"])  # __uint(type, N) is `int (*type)[N]`
    if not isinstance(kind, Array):
        return None
    return MapType(var.name, kind.length, fields["key"], fields["value"])

