"""Writing unit files for tests."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def ini_unit(*, hook="xdp", interfaces="veth0", before="", after="", position="", proceed="", extra="") -> str:
    lines = ["[Unit]"]
    if before:
        lines.append(f"Before={before}")
    if after:
        lines.append(f"After={after}")
    lines += ["[Program]", "Object=prog.bpf.o", "[Attach]", f"Hook={hook}", f"Interfaces={interfaces}"]
    if position:
        lines.append(f"Position={position}")
    if proceed:
        lines.append(f"ProceedOn={proceed}")
    return "\n".join(lines) + "\n" + extra
