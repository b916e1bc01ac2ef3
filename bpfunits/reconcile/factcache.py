"""What the kernel said about the programs on a node's hooks, kept from one bpfunits process to
the next: a program's name, tag, maps and manifest never change while it exists, and its id goes
to no other program until the kernel has given out 2^31 ids (they count up, and wrap around only
there) or boots again. So an `apply` still
reads from the kernel which programs run where, and what its pins hold, but not again what each
of thousands of chains is. (A program found carrying no manifest could be given one later, by
whoever freezes a map it holds: kept as carrying none, it is foreign, or of unknown content and
replaced, never taken for an unchanged chain.)

The file belongs to one boot (its boot id is checked) and is root's alone (0600, read with strict
permissions); one that is missing, of another boot, version or owner, or not what bpfunits writes
is no cache: everything is read from the kernel, as without one.
"""

from __future__ import annotations

import json
from pathlib import Path

from bpfunits import atomicfile
from bpfunits.hooks.observe import Known
from bpfunits.linker.manifest import Manifest, ManifestError
from bpfunits.sys.bpf import ProgInfo
from bpfunits.untrusted import UntrustedFileError, read_untrusted

VERSION = 1
MAX_SIZE = 64 << 20  # ~100 bytes per program, and each distinct manifest once
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def path_beside(state_file: Path) -> Path:
    """Where the cache is kept: beside the daemon's state file, in a folder of the boot (/run)."""
    return state_file.with_name("programs.json")


def load(path: Path) -> dict[int, Known]:
    """The programs the file knows, by id; none when it is no cache of this boot."""
    try:
        document = json.loads(read_untrusted(path, MAX_SIZE, strict=True))
        if document["version"] != VERSION or document["boot"] != _boot_id():
            return {}
        manifests = [Manifest.from_bytes(_text(m).encode()) for m in document["manifests"]]
        known = {}
        for prog_id, prog_type, name, tag, map_ids, manifest in document["programs"]:
            info = ProgInfo(_count(prog_id), _count(prog_type), _text(name), _text(tag),
                            tuple(_count(i) for i in map_ids))
            known[info.id] = Known(info, manifests[_count(manifest)] if manifest is not None else None)
        return known
    except (UntrustedFileError, OSError, ValueError, KeyError, TypeError, IndexError, ManifestError,
            RecursionError):
        return {}


def _count(value: object) -> int:
    if type(value) is not int or value < 0:  # noqa: E721 (bool is no count, nor a negative index)
        raise ValueError(f"{value!r} is not a count")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def save(path: Path, known: dict[int, Known]) -> None:
    """Replace the file with what is known now (OSError when that fails)."""
    manifests: dict[Manifest, int] = {}
    programs = []
    for prog_id, (info, manifest) in sorted(known.items()):
        index = None if manifest is None else manifests.setdefault(manifest, len(manifests))
        programs.append([prog_id, info.type, info.name, info.tag, list(info.map_ids), index])
    document = {"version": VERSION, "boot": _boot_id(), "programs": programs,
                "manifests": [m.to_bytes().decode() for m in manifests]}
    atomicfile.replace(path, json.dumps(document, separators=(",", ":")).encode(), mode=0o600)


def _boot_id() -> str:
    return _BOOT_ID.read_text().strip()
