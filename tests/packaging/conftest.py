"""Fixtures of the packaging tests: a namespace the example units attach in, and the package."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.demo import DemoNetns

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_netns() -> Iterator[DemoNetns]:
    name = f"bu-pkg-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ip = ["ip", "-n", name, "link"]
        subprocess.run(ip + ["add", "bpfu-demo0", "type", "veth", "peer", "name", "bpfu-demo1"], check=True)
        # lo too: the daemon's metrics listener takes 127.0.0.1:9464 there by default.
        for ifname in ("bpfu-demo0", "bpfu-demo1", "lo"):
            subprocess.run(ip + ["set", ifname, "up"], check=True)
        yield DemoNetns(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture(scope="session")
def built_package(tmp_path_factory) -> Path:
    """The folder scripts/build-deb.sh built the wheel and the .deb into (once per session)."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-deb.sh"), str(ROOT / ".venv" / "bin" / "python")],
        env=dict(os.environ, DIST=str(dist)), cwd=ROOT, check=True, capture_output=True,
    )
    return dist
