"""A Debian 12 root file system to boot systemd in: built once by mmdebstrap, kept as a tarball
in the cache folder (named after what it holds, so a changed package list builds a new one)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SUITE = "bookworm"
# systemd as PID 1 and journald; iproute2 and python3, libbpf1 for the package; python3-bpfcc
# for a Source= unit's compile. apt comes with minbase.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "python3", "libbpf1", "python3-bpfcc")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "bpfunits"


def tarball() -> Path:
    """The cached tarball, built first if missing (about a minute, with Debian's mirror)."""
    tag = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:12]
    path = cache_dir() / f"rootfs-{SUITE}-{tag}.tar"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        try:
            subprocess.run(
                ["mmdebstrap", "--quiet", "--variant=minbase", "--format=tar", f"--include={','.join(PACKAGES)}", SUITE, str(partial)],
                check=True, capture_output=True, text=True,
            )
            partial.rename(path)  # whole or not at all: an interrupted build leaves no tarball
        finally:
            partial.unlink(missing_ok=True)
    return path


def extract(into: Path) -> Path:
    into.mkdir()
    subprocess.run(["tar", "-C", str(into), "-xf", str(tarball())], check=True)
    return into


def available() -> str | None:
    """Why a container cannot boot here, or None."""
    missing = [tool for tool in ("mmdebstrap", "systemd-nspawn", "nsenter") if shutil.which(tool) is None]
    return f"{', '.join(missing)} not installed (scripts/setup-host.sh)" if missing else None
