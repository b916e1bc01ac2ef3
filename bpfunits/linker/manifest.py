"""The manifest a linked chain carries: a frozen, program-read-only map named bpfu_manifest that
the program references, so that a program id alone tells which chain it is, and whose it is: the
manifest names the state root of the bpfunits that built it, which adopts the chain even when its
pin is lost (a kill between attach and pin)."""

from __future__ import annotations

import functools
import json
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from bpfunits.errors import BpfUnitsError
from bpfunits.sys import bpf


class ManifestError(BpfUnitsError):
    """A map named like a manifest that does not hold one this bpfunits reads."""


MAP_NAME = "bpfu_manifest"
FORMAT = 1
_KEY = struct.pack("<I", 0)
_FROZEN = re.compile(rb"^frozen:[ \t]+1[ \t]*$", re.MULTILINE)  # a line of a map's fdinfo


@dataclass(frozen=True)
class ManifestEntry:
    unit: str
    sha256: str
    tag: str
    proceed_on: tuple[int, ...]  # verdict codes, sorted
    mode: str  # "inline" or "call"; "alone" for an event unit's program
    # The unit program's maps the chain uses, (name, id): which of a unit's maps it runs with
    # (empty in manifests from before they were recorded).
    maps: tuple[tuple[str, int], ...] = ()
    globals: tuple[tuple[str, str], ...] = ()  # the unit's Global= values the chain was loaded with


@dataclass(frozen=True)
class Manifest:
    version: str  # the chain's own version, chosen by the caller
    hook: str
    components: tuple[ManifestEntry, ...]
    owner: str = ""  # the bpffs state root of the bpfunits that built it ("" before it was recorded)

    def to_bytes(self) -> bytes:
        return json.dumps({"format": FORMAT, **asdict(self)}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        """ManifestError when `raw` is not a manifest of this format: any root process can make a
        program carry a frozen map of this name, and another bpfunits version another format."""
        try:
            data = json.loads(raw.rstrip(b"\0"))
            if data["format"] != FORMAT:
                raise ManifestError(f"manifest format {data['format']!r}, this bpfunits reads {FORMAT}")
            entries = tuple(
                ManifestEntry(str(e["unit"]), str(e["sha256"]), str(e["tag"]),
                              tuple(int(v) for v in e["proceed_on"]), str(e["mode"]),
                              tuple((str(n), int(i)) for n, i in e.get("maps", ())),
                              tuple((str(n), str(v)) for n, v in e.get("globals", ())))
                for e in data["components"]
            )
            return cls(str(data["version"]), str(data["hook"]), entries, str(data.get("owner", "")))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
            raise ManifestError(f"not a manifest bpfunits can read: {e!r}") from e


def create_manifest_map(manifest: Manifest) -> int:
    """An array map holding the manifest, frozen against writes from user space and read-only
    for programs."""
    value = manifest.to_bytes()
    fd = bpf.map_create(bpf.MapType.ARRAY, 4, len(value), 1, name=MAP_NAME, flags=bpf.BPF_F_RDONLY_PROG)
    try:
        bpf.map_update(fd, _KEY, value)
        bpf.map_freeze(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


EVENT_VERSION = "event"  # an event unit's manifest: one entry, its program as loaded, run alone


def bind_event_manifest(prog_fd: int, entry: ManifestEntry, hook: str, owner: str) -> None:
    """Give an event unit's program (loaded as its object has it, with no chain around it) the
    manifest a chain carries: bound to it with BPF_PROG_BIND_MAP, so that it names its unit and
    state root for as long as it exists, whoever looks (`bpftool prog show`, read_manifest)."""
    fd = create_manifest_map(Manifest(EVENT_VERSION, hook, (entry,), owner))
    try:
        bpf.prog_bind_map(prog_fd, fd)
    finally:
        os.close(fd)


def read_manifest(prog_id: int, map_ids: Iterable[int] | None = None) -> Manifest | None:
    """The manifest of the program with this id, or None when it carries none. `map_ids`: the
    program's, when already known. Only the manifest map is read: this runs for every chain a
    reconcile looks at."""
    if map_ids is None:
        prog_fd = bpf.prog_get_fd_by_id(prog_id)
        try:
            map_ids = bpf.prog_info(prog_fd).map_ids
        finally:
            os.close(prog_fd)
    for map_id in map_ids:
        fd = bpf.map_get_fd_by_id(map_id)
        try:
            info = bpf.map_info(fd)
            if info.name == MAP_NAME:  # the first of that name, as in manifest_of()
                return _read(fd, info)
        finally:
            os.close(fd)
    return None


def manifest_of(map_fds: dict[str, int]) -> Manifest | None:
    """The manifest among a program's maps (by name), if any."""
    fd = map_fds.get(MAP_NAME)
    return None if fd is None else _read(fd, bpf.map_info(fd))


def _read(fd: int, info: bpf.MapInfo) -> Manifest | None:
    """The manifest in map `fd`: only a map nobody can have written since it was made (frozen,
    read-only for programs) and that holds a manifest of this format counts. A chain of ours
    whose manifest does not (another version's) is then of unknown content, never unchanged."""
    if not _sealed(fd, info):
        return None
    raw = bpf.map_lookup(fd, _KEY, info.value_size)
    return _parsed(raw) if raw else None


@functools.lru_cache(maxsize=64)
def _parsed(raw: bytes) -> Manifest | None:
    # The chains of one glob unit carry the same manifest: a node's thousands of chains hold a
    # few, each parsed once (a Manifest is immutable).
    try:
        return Manifest.from_bytes(raw)
    except ManifestError:
        return None


def _sealed(fd: int, info: bpf.MapInfo) -> bool:
    if not info.flags & bpf.BPF_F_RDONLY_PROG:
        return False
    # The kernel reports a map's frozen state only in its fdinfo (since 5.2, with BPF_MAP_FREEZE).
    fdinfo = os.open(f"/proc/self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        text = os.read(fdinfo, 4096)  # a map's fdinfo is a few hundred bytes
    finally:
        os.close(fdinfo)
    return _FROZEN.search(text) is not None
