"""The container image (`make image`, scripts/build-image.sh): built from Debian's packages and the
.deb, holding the .deb's files, and run with podman as the DaemonSet runs it."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import secrets
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import yaml

from bpfunits import __version__
from tests.configmap import configmap_volume
from tests.packaging.conftest import ROOT
from tests.packaging.podman import CONTAINER, DAEMONSET, PODMAN, POD, Pod, inspect, logs
from tests.packaging.test_deb import deb

IMAGE = f"localhost/bpfunits:{__version__}"
BCC_IMAGE = f"{IMAGE}-bcc"
SIZE_LIMIT = 120_000_000
CONFIGMAPS = {d["metadata"]["name"]: d for d in yaml.safe_load_all((ROOT / "packaging" / "kubernetes" /
                                                                    "configmap.yaml").read_text()) if d}
UNITS = CONFIGMAPS["bpfunits-units"]["data"]


def build(dist: Path, *options: str) -> tuple[Path, str]:
    """scripts/build-image.sh OPTIONS on the .deb in dist: (the OCI archive, the base image). The
    base comes from the cache (~/.cache/bpfunits-image and the podman store) after a first build."""
    start = time.monotonic()
    run = subprocess.run(["bash", str(ROOT / "scripts" / "build-image.sh"), *options, str(deb(dist))],
                         env=dict(os.environ, DIST=str(dist)), cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    print(f"{run.stderr}image built in {time.monotonic() - start:.1f}s")
    match = re.search(r"^build-image: base (\S+)", run.stderr, re.M)
    assert match, run.stderr
    return Path(run.stdout.strip()), match[1]


@pytest.fixture(scope="module")
def built_image(built_package) -> tuple[Path, str]:
    return build(built_package)


def files(archive: tarfile.TarFile) -> dict[str, tuple[int, int, str]]:
    """Every non-directory: path -> (size, mode, link target), paths as on a merged-/usr system."""
    def merged(name: str) -> str:
        name = name.removeprefix("./")
        return f"usr/{name}" if name.split("/")[0] in ("bin", "sbin", "lib", "lib64") else name

    return {merged(m.name): (m.size, m.mode & 0o7777, m.linkname) for m in archive.getmembers() if not m.isdir()}


def layer_files(archive: Path) -> list[dict[str, tuple[int, int, str]]]:
    """The files of each layer of the OCI archive's one image, lowest first."""
    with tarfile.open(archive) as outer:
        def blob(digest: str) -> IO[bytes]:
            found = outer.extractfile(f"blobs/{digest.replace(':', '/')}")
            assert found
            return found

        index = outer.extractfile("index.json")
        assert index
        (entry,) = json.load(index)["manifests"]
        layers = []
        for layer in json.load(blob(entry["digest"]))["layers"]:
            with tarfile.open(fileobj=blob(layer["digest"]), mode="r:*") as content:
                layers.append(files(content))
        return layers


@pytest.mark.root
def test_image_config_labels_and_size(built_image):
    _, base = built_image
    image = inspect("image", IMAGE)
    config = image["Config"]
    assert config["Entrypoint"] == ["/usr/bin/bpfunits", "daemon"] and not config.get("Cmd")
    labels = config["Labels"]
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == revision
    assert labels["org.opencontainers.image.source"] and labels["org.opencontainers.image.created"]
    assert labels["org.opencontainers.image.licenses"] == "GPL-2.0-only"
    # The DaemonSet runs what `make image` makes.
    assert CONTAINER["image"] == IMAGE
    # Two layers, the base below: a code change rebuilds only the package's layer on top.
    assert image["RootFS"]["Layers"][:-1] == inspect("image", base)["RootFS"]["Layers"]
    assert len(image["RootFS"]["Layers"]) == 2
    print(f"image size {image['Size'] / 1e6:.1f} MB")
    assert image["Size"] <= SIZE_LIMIT


@pytest.mark.root
def test_image_holds_the_deb_files_and_nothing_else(built_image, built_package):
    archive, _ = built_image
    base_files, layer = layer_files(archive)
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb(built_package)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as content:
        packaged = files(content)
    # dpkg's database records the package; dpkg's log and backups are removed (whiteouts).
    bookkeeping = {p for p in layer if p.startswith("var/lib/dpkg/") or "/.wh." in p}
    assert "var/lib/dpkg/info/bpfunits.list" in bookkeeping
    assert {p for p in bookkeeping if "/.wh." in p} <= {"var/log/.wh.dpkg.log", "var/lib/dpkg/.wh.status-old",
                                                        "var/lib/dpkg/.wh.diversions-old"}
    assert {p: layer[p] for p in layer.keys() - bookkeeping} == packaged
    # Nothing the daemon does not need: no shell but dash, no apt, perl, iproute2 or bcc.
    for absent in ("usr/bin/bash", "usr/bin/apt", "usr/bin/perl", "usr/sbin/ip", "usr/bin/ip"):
        assert absent not in base_files
    assert not any(p.startswith("usr/lib/python3/dist-packages/bcc") for p in base_files)


@pytest.fixture
def pod(tmp_path, bpffs_root, built_image) -> Iterator[tuple[Pod, list[str]]]:
    """The DaemonSet's pod: a namespace with the interface the ConfigMap's units select
    (bpfu-demo0) and its veth peer they exclude, the node's bpffs with a private root, the
    ConfigMap's configuration pointing there, an empty units volume. Yields it and the list of
    container names the test starts; they are removed afterwards, by those names."""
    netns = f"bu-img-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
    names: list[str] = []
    try:
        ip = ["ip", "-n", netns, "link"]
        subprocess.run([*ip, "add", "bpfu-demo0", "type", "veth", "peer", "name", "bpfu-demo-mgmt"],
                       check=True, capture_output=True)
        for ifname in ("bpfu-demo0", "bpfu-demo-mgmt"):
            subprocess.run([*ip, "set", ifname, "up"], check=True, capture_output=True)
        volumes = {"bpffs": Path("/sys/fs/bpf"), "units": tmp_path / "units", "config": tmp_path / "config",
                   "run": tmp_path / "run"}
        assert {v["name"] for v in POD["volumes"]} == volumes.keys()
        for folder in list(volumes.values())[1:]:
            folder.mkdir()
        config = yaml.safe_load(CONFIGMAPS["bpfunits-config"]["data"]["bpfunits.yaml"])
        config["bpffs_root"] = str(bpffs_root.path)
        (volumes["config"] / "bpfunits.yaml").write_text(yaml.safe_dump(config))
        yield Pod(IMAGE, netns, volumes), names
    finally:
        for name in names:
            subprocess.run([*PODMAN, "rm", "-f", "-t", "0", name], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def wait_for(read, wanted, timeout: float):
    """read() once it satisfies wanted(value); fails with the last value after `timeout`."""
    start = time.monotonic()
    while not wanted(seen := read()):
        assert time.monotonic() - start < timeout, f"after {timeout}s: {seen}"
        time.sleep(0.5)
    return seen


def units_of(chains) -> dict:
    return {hook: units for hook, (_, units) in chains.items()}


@pytest.mark.kernel
def test_image_runs_the_daemon_as_the_daemonset_does(pod):
    pod, names = pod
    first = {name: text for name, text in UNITS.items() if name != "connlimit.unit"}
    configmap_volume(pod.volumes["units"], "06_00_00.1", first)
    names.append(f"bu-img-a-{secrets.token_hex(3)}")
    pod.start(names[0])

    # No more capabilities than the DaemonSet grants; not privileged.
    container = inspect("container", names[0])
    granted = {f"CAP_{c}" for c in CONTAINER["securityContext"]["capabilities"]["add"]}
    assert set(container["EffectiveCaps"]) == set(container["BoundingCaps"]) == granted
    assert container["HostConfig"]["Privileged"] is False
    # podman shows a container's entrypoint joined by spaces.
    assert container["Config"]["Entrypoint"] == "/usr/bin/bpfunits daemon"
    assert container["Config"]["Cmd"] == CONTAINER["args"]

    chains = wait_for(pod.chains, lambda c: units_of(c) == {("bpfu-demo0", "xdp"): ["ratelimit", "filter"],
                                                            ("bpfu-demo0", "tc-egress"): ["counter"]}, 60)

    # A live swap of the ConfigMap folder relinks the XDP chain.
    configmap_volume(pod.volumes["units"], "06_01_00.2", UNITS)
    swapped = wait_for(pod.chains, lambda c: units_of(c)[("bpfu-demo0", "xdp")] == ["ratelimit", "connlimit",
                                                                                      "filter"], 30)
    assert swapped[("bpfu-demo0", "xdp")][0] != chains[("bpfu-demo0", "xdp")][0]
    assert swapped[("bpfu-demo0", "tc-egress")] == chains[("bpfu-demo0", "tc-egress")]

    # `podman stop` (SIGTERM, as the kubelet sends) ends the daemon at once; the chains stay.
    start = time.monotonic()
    subprocess.run([*PODMAN, "stop", "-t", str(POD["terminationGracePeriodSeconds"]), names[0]],
                   check=True, capture_output=True)
    stopped = time.monotonic() - start
    assert inspect("container", names[0])["State"]["ExitCode"] == 0
    assert stopped < POD["terminationGracePeriodSeconds"] / 2, f"stopping took {stopped:.1f}s"
    assert pod.chains() == swapped

    # A second container adopts the chains: its first reconcile swaps nothing.
    names.append(f"bu-img-b-{secrets.token_hex(3)}")
    pod.start(names[1])
    started = wait_for(lambda: [e for e in logs(names[1]) if e["message"].startswith("reconcile (start)")],
                       bool, 60)
    assert (started[0]["hooks"], started[0]["unchanged"]) == (2, 2), started
    assert pod.chains() == swapped
    print(f"stop: {stopped:.1f}s; DaemonSet {DAEMONSET['metadata']['name']} as podman: {pod.options()}")


@pytest.mark.kernel
def test_bcc_image_runs_a_source_unit(pod, built_package):
    """The -bcc variant compiles a Source= unit in the pod, with the node's kernel headers mounted
    as the DaemonSet's commented `modules` and `headers` volumes say."""
    pod, names = pod
    _, base = build(built_package, "--bcc")
    assert base.endswith("-bcc")
    daemonset = (ROOT / "packaging" / "kubernetes" / "daemonset.yaml").read_text()
    assert "#   mountPath: /lib/modules" in daemonset and "#   mountPath: /usr/src" in daemonset
    size = inspect("image", BCC_IMAGE)["Size"]
    print(f"-bcc image size {size / 1e6:.1f} MB")
    bcc = dataclasses.replace(pod, image=BCC_IMAGE, extra=("--volume", "/lib/modules:/lib/modules:ro",
                                                           "--volume", "/usr/src:/usr/src:ro"))
    source = (ROOT / "bpf" / "bcc_counter.c").read_text()
    configmap_volume(pod.volumes["units"], "07_00_00.1", {
        "bcc_counter.c": source,
        "count.unit": "[Program]\nSource=/etc/bpfunits.d/bcc_counter.c\n[Attach]\nHook=xdp\nInterfaces=bpfu-demo0\n",
    })
    names.append(f"bu-img-bcc-{secrets.token_hex(3)}")
    bcc.start(names[-1])
    wait_for(bcc.chains, lambda c: units_of(c) == {("bpfu-demo0", "xdp"): ["count"]}, 120)
