"""A unit's program as loaded, from an ELF object (load.py) or a bcc source (bcc.py): its fd, its
maps, and its relocated instructions.

The instructions embed the fds of the program's maps (ld_imm64 BPF_PSEUDO_MAP_FD), which name
those maps only while the program is open: after close() the numbers may name other objects, or
nothing. So `insns` refuses to give them once the program is closed, and the linker reads them
from the program itself when it links a chain and again when it loads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bpfunits.closing import Closing
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.hooks.events import EventHook
from bpfunits.sys import bpf


class ProgramClosed(BpfUnitsError):
    """The instructions of a closed program were asked for."""


@dataclass(frozen=True)
class MapRef:
    name: str
    fd: int
    id: int
    type: int
    key_size: int
    value_size: int
    max_entries: int
    pinned_path: str | None


def map_ref(name: str, fd: int, pinned_path: str | None) -> MapRef:
    info = bpf.map_info(fd)
    return MapRef(name, fd, info.id, info.type, info.key_size, info.value_size, info.max_entries, pinned_path)


@dataclass(eq=False)
class LoadedProgram(Closing):
    """A loaded program with the maps of its object. It owns every fd it holds (and those
    inside `insns`) until close(); compared by identity."""

    fd: int
    name: str
    hook: Hook | EventHook
    prog_type: int
    id: int
    tag: str
    maps: dict[str, MapRef]
    sha256: str
    _insns: bytes = field(repr=False)
    _owned: tuple[int, ...] = field(repr=False)
    # XDP: the program declares it handles multi-buffer frames (SEC("xdp.frags"), loaded with
    # BPF_F_XDP_HAS_FRAGS).
    frags: bool = False
    closed: bool = field(default=False, init=False)

    @property
    def insns(self) -> bytes:
        """The relocated instructions (map fds in ld_imm64, subprograms after the main function)."""
        self.require_open()
        return self._insns

    def require_open(self) -> None:
        if self.closed:
            raise ProgramClosed(
                f"program {self.name!r} (id {self.id}) was closed, and the map fds its instructions hold with it: "
                "a chain must be linked and loaded while the programs it is made of are open"
            )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            close_all(self._owned)


def loaded_program(
    prog_fd: int,
    name: str,
    hook: Hook | EventHook,
    insns: bytes,
    maps: dict[str, tuple[int, str | None]],
    sha256: str,
    owned: list[int],
    *,
    frags: bool = False,
) -> LoadedProgram:
    """The program just loaded as `prog_fd`, with its maps (name: fd, pin path), owning the fds
    `owned` (the program's, its maps' and any other the load keeps open). If the program or a
    map cannot be read back, they are closed before the error goes on."""
    try:
        info = bpf.prog_info(prog_fd)
        refs = {map_name: map_ref(map_name, fd, pin) for map_name, (fd, pin) in maps.items()}
    except BaseException:
        close_all(owned)
        raise
    return LoadedProgram(prog_fd, name, hook, info.type, info.id, info.tag, refs, sha256, insns, tuple(owned), frags)


def close_all(fds: list[int] | tuple[int, ...]) -> None:
    for fd in fds:
        os.close(fd)
