"""A real Prometheus server (Debian's) scrapes a real daemon on a veth pair: PromQL through its
HTTP API sees each unit's drops, and no counter reset across a live reorder."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.kernel.test_daemon import drop, eventually, unit_text
from tests.packaging.test_grafana import dashboard, queries
from tests.timing import scaled
from tests.traffic import frame, send_frames
from tests.unitfiles import write

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("prometheus") is None,
                                 reason="prometheus is not installed (scripts/setup-host.sh)")]
SCRAPE = "1s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, address: str) -> None:
        self.address = address

    def query(self, promql: str) -> list[dict]:
        url = f"http://{self.address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as response:
            doc = json.load(response)
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def values(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}


@pytest.fixture
def prometheus(tmp_path) -> Iterator[Callable[[str], Prometheus]]:
    """Starts Prometheus on a free port of 127.0.0.1, scraping `target` every second, with its
    own configuration and storage under tmp_path; killed by its PID afterwards."""
    started: list[subprocess.Popen] = []

    def start(target: str) -> Prometheus:
        config = tmp_path / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: {SCRAPE}\n  evaluation_interval: {SCRAPE}\n"
                          f"scrape_configs:\n  - job_name: bpfunits\n    static_configs:\n"
                          f"      - targets: ['{target}']\n")
        address = f"127.0.0.1:{free_port()}"
        log = (tmp_path / "prometheus.log").open("w")
        started.append(subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address={address}", "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT))
        server = Prometheus(address)
        eventually(lambda: _up(server), 30, "Prometheus scrapes the daemon")
        return server

    try:
        yield start
    finally:
        for process in started:
            process.terminate()
            try:
                process.wait(scaled(10))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _up(server: Prometheus) -> bool:
    try:
        return server.values("up", "job") == {"bpfunits": 1.0}
    except OSError:
        return False


def test_prometheus_sees_each_units_drops_and_no_reset_across_a_live_reorder(daemon, prometheus, veth_pair):
    d = daemon()
    drop(d.units, "10-count.unit", unit_text("counter.bpf.o"))
    drop(d.units, "20-drop.unit", unit_text("dropper.bpf.o"))
    drop(d.units, "30-count.unit", unit_text("counter.bpf.o"))
    eventually(lambda: d.chain() == ("10-count", "20-drop", "30-count"), 5, "the chain attached")
    server = prometheus(d.metrics_address())
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(40)])

    drops = f'bpfunits_unit_verdicts_total{{interface="{veth_pair.if_a}",hook="xdp",verdict="drop"}}'
    want = {"20-drop": 40.0}  # the counters never returned drop: no series of theirs
    eventually(lambda: server.values(drops, "unit") == want, 10, f"per-unit drops {want} in Prometheus")

    # Reordered live: the dropper first; then more traffic, which it alone sees.
    write(d.units, "20-drop.d/order.conf", "[Unit]\nBefore=10-count\n")
    eventually(lambda: d.chain() == ("20-drop", "10-count", "30-count"), 5, "reordered")
    time.sleep(2.5)  # scrapes of the new chain before the traffic
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(10)])
    want = {"20-drop": 50.0}
    eventually(lambda: server.values(drops, "unit") == want, 10, f"per-unit drops {want} after the reorder")
    packets = server.values("bpfunits_unit_packets_total", "unit")
    assert packets == {"10-count": 40.0, "20-drop": 50.0, "30-count": 0.0}
    assert server.values("resets(bpfunits_unit_packets_total[5m])", "unit") == {
        "10-count": 0.0, "20-drop": 0.0, "30-count": 0.0}
    assert server.values("sum by (unit) (resets(bpfunits_unit_verdicts_total[5m]))", "unit") == {
        "10-count": 0.0, "20-drop": 0.0}
    assert server.values('bpfunits_kernel_operations_total{kind="replace"}', "kind") == {"replace": 1.0}

    # Every query of the Grafana dashboard is valid PromQL, and its per-unit panels have data.
    for expr in queries(dashboard()):
        server.query(expr.replace("$instance", ".*").replace("$__rate_interval", "1m"))
    per_unit = queries(dashboard())[0].replace("$instance", ".*").replace("$__rate_interval", "1m")
    assert {r["metric"]["unit"] for r in server.query(per_unit)} == {"10-count", "20-drop", "30-count"}
