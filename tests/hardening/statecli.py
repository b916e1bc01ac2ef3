"""Running plan, apply and status as the CLI does, in a test namespace with a state root of its own,
and reading pinned maps back: what the tests of the state root and the reconcile's faults share."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from bpfunits.cli import main
from bpfunits.sys import bpf

BPF = Path(__file__).resolve().parents[2] / "bpf"
KEY0 = struct.pack("<I", 0)


def unit(obj: str, hook: str = "xdp", extra: str = "", interfaces: str = "bu*") -> str:
    return f"[Unit]\n{extra}\n[Program]\nObject={BPF / obj}\n[Attach]\nHook={hook}\nInterfaces={interfaces}\n"


def run(capsys, command: str, ns: str, units: Path, root: Path, *more: str) -> tuple[int, dict]:
    """`bpfunits COMMAND --json` in namespace `ns`; the exit code and the JSON printed."""
    code = main([command, "--netns", ns, "--units-dir", str(units), "--bpffs-root", str(root), "--json",
                 *(["--detailed-exitcode"] if command != "status" else []), *more])
    return code, json.loads(capsys.readouterr().out)


def hooks(doc: dict) -> dict[tuple[str, str], dict]:
    return {(h["interface"], h["hook"]): h for h in doc["hooks"]}


def pinned_map(path: Path) -> bpf.MapInfo:
    fd = bpf.obj_get(str(path))
    try:
        return bpf.map_info(fd)
    finally:
        os.close(fd)


def pinned_count(path: Path) -> int:
    """Slot 0 of the u64 array map pinned at `path`."""
    fd = bpf.obj_get(str(path))
    try:
        return struct.unpack("<Q", bpf.map_lookup(fd, KEY0, 8))[0]
    finally:
        os.close(fd)
