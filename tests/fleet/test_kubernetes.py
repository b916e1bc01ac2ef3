"""The Kubernetes manifests: valid, holding valid units, and a ConfigMap update reaching the
kernel through a real `bpfunits daemon` watching the kubelet's on-disk ConfigMap layout."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bpfunits.config import Config, load_config
from bpfunits.metrics.listen import parse
from tests.configmap import configmap_volume
from tests.fleet.example_units import EXAMPLES, comparable
from tests.packaging.servicefile import capabilities as service_capabilities

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "packaging" / "kubernetes"
SERVICEMONITOR = MANIFESTS / "prometheus-operator" / "servicemonitor.yaml"
BPFUNITS = str(Path(sys.executable).with_name("bpfunits"))
# The image's object folder, named in the ConfigMap's units; the tests use bpf/examples.
IMAGE_OBJECTS = "/usr/lib/bpfunits/"
# An older Kubernetes release and the latest one the validator bundles.
KUBERNETES_VERSIONS = ["1.32.0", kubernetes_validate.utils.latest_version()]


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def resource(kind: str, name: str) -> dict:
    found = [d for f in sorted(MANIFESTS.glob("*.yaml")) for d in documents(f.name)
             if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} definitions"
    return found[0]


UNITS = resource("ConfigMap", "bpfunits-units")
CONFIG = resource("ConfigMap", "bpfunits-config")
DAEMONSET = resource("DaemonSet", "bpfunits")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", ["configmap.yaml", "daemonset.yaml"])
def test_manifest_is_valid(name, version):
    for document in documents(name):
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("name", ["configmap.yaml", "daemonset.yaml"])
def test_manifest_starts_with_a_comment_header(name):
    header = (MANIFESTS / name).read_text().split("\n")[:5]
    assert all(line.startswith("#") for line in header)


def test_daemonset_runs_the_daemon_on_every_node(tmp_path):
    pod = DAEMONSET["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert pod["hostNetwork"] is True
    assert {"operator": "Exists"} in pod["tolerations"]
    # The systemd service's capabilities and no more (tests/packaging/test_image.py runs the image so).
    security = container["securityContext"]
    assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"], "add": [c.upper() for c in service_capabilities()]}
    # The image's entrypoint is `bpfunits daemon`: the pod passes only its options.
    assert "command" not in container
    assert "--units-dir=/etc/bpfunits.d" in container["args"]
    assert "--config=/etc/bpfunits/bpfunits.yaml" in container["args"]
    assert container["resources"]["limits"] and pod["terminationGracePeriodSeconds"] > 0

    assert mounts["/sys/fs/bpf"]["mountPropagation"] == "HostToContainer"
    assert volumes[mounts["/sys/fs/bpf"]["name"]]["hostPath"]["path"] == "/sys/fs/bpf"
    # Whole-folder ConfigMap mounts: a subPath mount would never see updates.
    assert "subPath" not in mounts["/etc/bpfunits.d"]
    assert volumes[mounts["/etc/bpfunits.d"]["name"]]["configMap"]["name"] == UNITS["metadata"]["name"]
    assert volumes[mounts["/etc/bpfunits"]["name"]]["configMap"]["name"] == CONFIG["metadata"]["name"]
    lock_folder = load_config_from(CONFIG, tmp_path).lock_file.parent
    assert volumes[mounts[str(lock_folder)]["name"]]["hostPath"]["path"] == str(lock_folder)


def test_daemonset_probes_and_scrape_annotations_use_the_configured_metrics_port(tmp_path):
    pod = DAEMONSET["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    listen = load_config_from(CONFIG, tmp_path).metrics_listen
    host, port = parse(listen)
    assert host == "0.0.0.0", "with hostNetwork, the kubelet probes the node's address, not 127.0.0.1"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    annotations = pod["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_servicemonitor_scrapes_the_daemonsets_metrics_port(version):
    service, monitor = [d for d in yaml.safe_load_all(SERVICEMONITOR.read_text()) if d]
    kubernetes_validate.validate(service, version, strict=True)
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    pod_labels = DAEMONSET["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["clusterIP"] == "None", "headless: one endpoint per node"
    (service_port,) = service["spec"]["ports"]
    (container,) = DAEMONSET["spec"]["template"]["spec"]["containers"]
    assert service_port["targetPort"] in {p["name"] for p in container["ports"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"] and endpoint["path"] == "/metrics"


def load_config_from(configmap: dict, folder: Path) -> Config:
    path = folder / "bpfunits.yaml"
    path.write_text(configmap["data"]["bpfunits.yaml"])
    return load_config(path)


def test_config_is_valid(tmp_path):
    config = load_config_from(CONFIG, tmp_path)
    assert config.units_dirs == (Path("/etc/bpfunits.d"),)
    assert config.bpffs_root.is_relative_to("/sys/fs/bpf")


def test_configmap_units_verify(tmp_path, bpf_objects):
    # verify opens the objects: those of this checkout stand in for the image's.
    for name, text in UNITS["data"].items():
        (tmp_path / name).write_text(text.replace(IMAGE_OBJECTS, f"{bpf_objects}/examples/"))
    run = subprocess.run([BPFUNITS, "verify", "--units-dir", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == f"{len(UNITS['data'])} units valid, 0 errors, 0 warnings"
    assert all(IMAGE_OBJECTS in text for text in UNITS["data"].values())


def test_configmap_units_are_the_example_chain(tmp_path):
    for name, text in UNITS["data"].items():
        (tmp_path / name).write_text(text)
    assert comparable(tmp_path) == comparable(EXAMPLES)


# --- a ConfigMap update, end to end ------------------------------------------------------------

@pytest.fixture
def demo_netns() -> Iterator[str]:
    """A namespace with the interface the ConfigMap's units select (bpfu-demo0), its veth peer
    bpfu-demo-mgmt, which they exclude."""
    ns = f"bu-k8s-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "bpfu-demo0", "type", "veth", "peer", "name", "bpfu-demo-mgmt"],
                       check=True, capture_output=True)
        for ifname in ("bpfu-demo0", "bpfu-demo-mgmt"):
            subprocess.run(["ip", "-n", ns, "link", "set", ifname, "up"], check=True, capture_output=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def daemon(tmp_path, demo_netns, bpffs_root, bpf_objects):
    """Start `bpfunits daemon` on tmp_path/units (a ConfigMap volume) in demo_netns; returns the
    status reader. The daemon is stopped by its PID afterwards."""
    config = tmp_path / "bpfunits.yaml"
    config.write_text(f"lock_file: {tmp_path / 'bpfunits.lock'}\nresync_period: 60\nmetrics_listen: 127.0.0.1:0\n")
    units = tmp_path / "units"
    units.mkdir()
    common = ["--config", str(config), "--units-dir", str(units), "--netns", demo_netns,
              "--bpffs-root", str(bpffs_root.path)]
    processes: list[subprocess.Popen] = []

    def start() -> None:
        with open(tmp_path / "daemon.log", "w") as log:
            processes.append(subprocess.Popen([BPFUNITS, "daemon", *common], stdout=log, stderr=subprocess.STDOUT))

    def chains() -> dict[tuple[str, str], list[str]]:
        """(interface, hook) -> the active units in order, per `bpfunits status --json`."""
        run = subprocess.run([BPFUNITS, "status", "--json", *common], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        return {(h["interface"], h["hook"]): [u["unit"] for u in h["units"] if u["state"] == "active"]
                for h in json.loads(run.stdout)["hooks"] if h["program"]}

    try:
        yield units, start, chains
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        print((tmp_path / "daemon.log").read_text() if (tmp_path / "daemon.log").exists() else "")


def wait_for(read, wanted, timeout: float) -> float:
    """Seconds until read() == wanted; fails with the last value after `timeout`."""
    start = time.monotonic()
    while (seen := read()) != wanted:
        assert time.monotonic() - start < timeout, f"after {timeout}s: {seen}, wanted {wanted}"
        time.sleep(0.2)
    return time.monotonic() - start


@pytest.mark.kernel
def test_configmap_update_reaches_the_kernel(daemon, bpf_objects):
    units, start, chains = daemon
    # The ConfigMap's own units, with the objects where this checkout builds them.
    files = {name: text.replace(IMAGE_OBJECTS, f"{bpf_objects}/examples/") for name, text in UNITS["data"].items()}
    first = {name: text for name, text in files.items() if name != "connlimit.unit"}
    configmap_volume(units, "05_00_00.1", first)
    start()
    wait_for(chains, {("bpfu-demo0", "xdp"): ["ratelimit", "filter"], ("bpfu-demo0", "tc-egress"): ["counter"]}, 30)

    configmap_volume(units, "05_01_00.2", files)
    seconds = wait_for(chains, {("bpfu-demo0", "xdp"): ["ratelimit", "connlimit", "filter"],
                                ("bpfu-demo0", "tc-egress"): ["counter"]}, 10)
    print(f"ConfigMap update applied within {seconds:.2f}s")

    configmap_volume(units, "05_02_00.3", {"connlimit.unit": files["connlimit.unit"]})
    wait_for(chains, {("bpfu-demo0", "xdp"): ["connlimit"]}, 10)
    assert sorted(p.name for p in units.iterdir()) == ["..2026_11_22_05_02_00.3", "..data", "connlimit.unit"]
