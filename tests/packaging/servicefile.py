"""Reading packaging/systemd/bpfunits.service, so tests run the daemon as the unit says."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "packaging" / "systemd"
SERVICE = SYSTEMD_DIR / "bpfunits.service"


def settings(path: Path = SERVICE) -> dict[str, list[str]]:
    """Every `Key=value` of the unit, values in order (systemd keys may repeat)."""
    found: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


def words(key: str) -> list[str]:
    """The space-separated words of every assignment of `key`."""
    return [w for value in settings().get(key, []) for w in value.split()]


def capabilities() -> list[str]:
    """CapabilityBoundingSet= as setpriv spells it: ["sys_admin", "net_admin"]."""
    return [c.removeprefix("CAP_").lower() for c in words("CapabilityBoundingSet")]


@cache
def syscall_set(name: str) -> frozenset[str]:
    """A system call or a @group, expanded through nested groups, as systemd-analyze lists it."""
    if not name.startswith("@"):
        return frozenset({name})
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True).stdout
    members = [line.strip() for line in out.splitlines()[1:] if line.strip() and not line.strip().startswith("#")]
    return frozenset().union(*(syscall_set(m) for m in members))
