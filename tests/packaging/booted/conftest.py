"""Fixtures of the booted-service tests: the cached root file system, a network namespace pair,
and a container booted in it with the package installed and the example units in place."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.packaging.booted import rootfs
from tests.packaging.booted.container import Boot, Container
from tests.packaging.test_deb import deb

DIST = "/srv/dist"  # where the container sees the built packages


@dataclass(frozen=True)
class Link:
    """bpfu-demo0 (which the example units match) in `ns`, the container's namespace; its peer
    `peer` in `peer_ns`, from which test frames come in."""

    ns: str
    peer_ns: str
    ifname: str = "bpfu-demo0"
    peer: str = "bpfu-peer0"


@pytest.fixture(scope="session")
def container_root(tmp_path_factory) -> Path:
    if (why := rootfs.available()) is not None:
        pytest.skip(why)
    return rootfs.extract(tmp_path_factory.mktemp("container") / "root")


@pytest.fixture
def link() -> Iterator[Link]:
    tag = secrets.token_hex(3)
    made = Link(f"bu-{tag}-svc", f"bu-{tag}-peer")
    created: list[str] = []
    try:
        for ns in (made.ns, made.peer_ns):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            created.append(ns)
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                            "net.ipv6.conf.default.disable_ipv6=1"], check=True)
        subprocess.run(["ip", "-n", made.ns, "link", "add", made.ifname, "type", "veth", "peer", "name", made.peer,
                        "netns", made.peer_ns], check=True)
        subprocess.run(["ip", "-n", made.ns, "link", "set", made.ifname, "up"], check=True)
        subprocess.run(["ip", "-n", made.peer_ns, "link", "set", made.peer, "up"], check=True)
        yield made
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def kernel_headers() -> tuple[tuple[Path, str], ...]:
    """bcc compiles against /lib/modules/$(uname -r)/build, a link into /usr/src (setup-host.sh)."""
    modules = Path("/lib/modules") / os.uname().release
    return tuple((p, str(p)) for p in (modules, Path("/usr/src")) if p.exists())


@pytest.fixture(scope="session")
def newer_package(built_package, tmp_path_factory) -> str:
    """The same build as a newer version, for an upgrade: its file name, beside the built one."""
    unpacked = tmp_path_factory.mktemp("newer") / "root"
    subprocess.run(["dpkg-deb", "-R", str(deb(built_package)), str(unpacked)], check=True)
    control = unpacked / "DEBIAN" / "control"
    version = re.search(r"^Version: (.*)$", control.read_text(), re.M).group(1)
    control.write_text(control.read_text().replace(f"Version: {version}\n", f"Version: {version}+1\n"))
    newer = deb(built_package).name.replace(f"_{version}_", f"_{version}+1_")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", str(unpacked), str(built_package / newer)],
                   check=True, capture_output=True)
    return newer


@pytest.fixture
def container(container_root, link, bpffs_root, built_package, tmp_path) -> Iterator[Container]:
    """Booted, with the package installed by apt (its maintainer scripts run under this systemd)
    and the example units in /etc/bpfunits.d; the service not started."""
    boot = Boot(container_root, Path("/run/netns") / link.ns, bpffs_root.path,
                ((built_package, DIST), *kernel_headers()))
    booted = Container(boot, tmp_path / "nspawn.log")
    try:
        booted.run("apt", "install", "-y", "-q", f"{DIST}/{deb(built_package).name}")
        booted.sh("cp /usr/share/doc/bpfunits/examples/*.unit /usr/share/doc/bpfunits/examples/*.yaml /etc/bpfunits.d/")
        yield booted
    finally:
        booted.stop()
