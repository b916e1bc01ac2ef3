"""The daemon's metrics and health, scraped over HTTP from a real daemon on a veth pair: every
family, per-unit counts that match the traffic, and counters that a reorder does not reset."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bpfunits.hooks import Hook
from tests.kernel.test_daemon import REPO, drop, eventually, unit_text
from tests.traffic import frame, send_frames
from tests.http import get
from tests.unitfiles import write

pytestmark = pytest.mark.kernel


def samples(address: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics: (name, labels) -> value."""
    status, text = get(address, "/metrics")
    assert status == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def test_every_family_and_the_health_endpoints(daemon, veth_pair):
    d = daemon()
    address = d.metrics_address()
    assert get(address, "/healthz")[0] == 200 and get(address, "/readyz") == (200, "ok: the first reconcile finished\n")
    assert get(address, "/nothing")[0] == 404

    drop(d.units, "10-count.unit", unit_text("counter.bpf.o"))
    drop(d.units, "20-drop.unit", unit_text("dropper.bpf.o"))
    drop(d.units, "30-count.unit", unit_text("counter.bpf.o"))
    drop(d.units, "40-bad.unit", unit_text("invalid.bpf.o", extra="After=30-count"))
    drop(d.units, "50-tc.unit", unit_text("tc_actions.bpf.o", hook="tc-ingress"))
    eventually(lambda: d.chain(Hook.TC_INGRESS) == ("50-tc",), 5, "the tc chain attached")
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(12)])

    where = {"interface": veth_pair.if_a, "hook": "xdp"}
    found = eventually(lambda: (m := samples(address)) and value(m, "bpfunits_unit_errors", unit="40-bad") == 1 and m,
                       5, "the broken unit's error exported")
    assert value(found, "bpfunits_unit_packets_total", **where, unit="20-drop") is None, "blocked: no chain yet"
    assert value(found, "bpfunits_hooks", state="blocked") == 1 and value(found, "bpfunits_hooks", state="failed") == 0
    (d.units / "40-bad.unit").unlink()
    eventually(lambda: d.chain() == ("10-count", "20-drop", "30-count"), 5, "the xdp chain attached")
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(12)])
    found = samples(address)

    assert value(found, "bpfunits_unit_packets_total", **where, unit="10-count") == 12
    assert value(found, "bpfunits_unit_verdicts_total", **where, unit="10-count", verdict="pass") == 12
    assert value(found, "bpfunits_unit_verdicts_total", **where, unit="20-drop", verdict="drop") == 12
    assert value(found, "bpfunits_unit_verdicts_total", **where, unit="20-drop", verdict="pass") is None, "never returned"
    assert value(found, "bpfunits_unit_packets_total", **where, unit="30-count") == 0
    tc = {"interface": veth_pair.if_a, "hook": "tc-ingress"}
    assert value(found, "bpfunits_unit_packets_total", **tc, unit="50-tc") is not None
    assert value(found, "bpfunits_chain_units", **where) == 3 and value(found, "bpfunits_chain_units", **tc) == 1
    (info,) = [dict(labels) for name, labels in found if name == "bpfunits_chain_info" and dict(labels)["hook"] == "xdp"]
    assert info["prog_id"] == str(d.prog_id()) and info["backend"] == "xdp-link" and len(info["tag"]) == 16
    assert value(found, "bpfunits_hooks", state="unchanged") == 2 and value(found, "bpfunits_hooks", state="blocked") == 0
    assert value(found, "bpfunits_unit_errors", unit="40-bad") is None, "fixed by its removal"
    assert value(found, "bpfunits_kernel_operations_total", kind="attach") == 2
    assert value(found, "bpfunits_kernel_operations_total", kind="replace") == 0
    assert value(found, "bpfunits_reconciles_total", trigger="start", result="ok") == 1
    assert value(found, "bpfunits_reconciles_total", trigger="files", result="failed") >= 1
    assert value(found, "bpfunits_reconcile_duration_seconds_count", trigger="start") == 1
    assert value(found, "bpfunits_last_successful_reconcile_timestamp_seconds") > 1.7e9
    build = next(dict(labels) for name, labels in found if name == "bpfunits_build_info")
    assert build["version"] and build["kernel"] and build["libbpf"].startswith("v1.")

    # A live reorder: the new chain goes on from the old one's counts.
    write(d.units, "10-count.d/order.conf", "[Unit]\nAfter=30-count\n")
    eventually(lambda: d.chain() == ("20-drop", "30-count", "10-count"), 5, "reordered")
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(5)])
    found = samples(address)
    assert value(found, "bpfunits_unit_verdicts_total", **where, unit="20-drop", verdict="drop") == 17
    assert value(found, "bpfunits_unit_packets_total", **where, unit="10-count") == 12
    assert value(found, "bpfunits_kernel_operations_total", kind="replace") == 1

    # Removing every unit detaches: the hook's series go.
    for name in ("10-count.unit", "20-drop.unit", "30-count.unit", "50-tc.unit"):
        (d.units / name).unlink()
    eventually(lambda: d.chain() is None and d.chain(Hook.TC_INGRESS) is None, 5, "detached")
    found = eventually(lambda: (m := samples(address)) and value(m, "bpfunits_kernel_operations_total", kind="detach") == 2
                       and m, 5, "the detaches counted")
    assert not [name for name, _ in found if name.startswith(("bpfunits_unit_", "bpfunits_chain_"))]


def test_an_address_the_daemon_cannot_listen_on_fails_its_start(tmp_path):
    taken = __import__("socket").create_server(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        for address, why in ((f"127.0.0.1:{port}", "Address already in use"),
                             ("192.0.2.1:9464", "Cannot assign requested address"),
                             ("no-such-host.invalid:9464", "cannot listen there")):
            config = tmp_path / "bpfunits.yaml"
            config.write_text(f"lock_file: {tmp_path / 'lock'}\nmetrics_listen: '{address}'\n")
            run = subprocess.run([sys.executable, "-m", "bpfunits", "daemon", "--config", str(config),
                                  "--units-dir", str(tmp_path), "--bpffs-root", str(tmp_path / "nowhere")],
                                 cwd=REPO, capture_output=True, text=True, timeout=60)
            assert run.returncode == 1, run.stderr
            assert f"bpfunits: metrics_listen '{address}': cannot listen there" in run.stderr and why in run.stderr
    finally:
        taken.close()


def test_declared_map_values_are_exported_typed_from_btf(daemon, veth_pair):
    d = daemon()
    drop(d.units, "10-count.unit", unit_text("counter.bpf.o") + "[Metrics]\nMap=packets 0\nMap=packets 5\n")
    drop(d.units, "20-count.unit", unit_text("counter.bpf.o") + "[Metrics]\nMap=packets 0\n")
    eventually(lambda: d.chain() == ("10-count", "20-count"), 5, "attached")
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(7)])
    # packets: an array of u64 (unsigned in its BTF): a counter; key 5 is past its one entry.
    eventually(lambda: "# TYPE bpfunits_map_packets_total counter\n" in get(d.metrics_address(), "/metrics")[1], 5,
               "the declared map metric exported")
    found = samples(d.metrics_address())
    assert value(found, "bpfunits_map_packets_total", unit="10-count", key="0") == 7
    assert value(found, "bpfunits_map_packets_total", unit="20-count", key="0") == 7
    assert value(found, "bpfunits_map_packets_total", unit="10-count", key="5") is None

    drop(d.units, "20-count.unit", unit_text("counter.bpf.o") + "[Metrics]\nMap=packets 0 gauge\n")
    eventually(lambda: "bpfunits_map_packets_total{key=\"0\",unit=\"20-count\"}" not in get(d.metrics_address(), "/metrics")[1],
               5, "a second kind for the same name is left out")


def test_a_hook_running_only_anothers_program_counts_as_foreign(daemon, veth_pair):
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a, "xdpgeneric", "obj",
                    str(REPO / "bpf" / "attach_foreign.bpf.o"), "sec", "xdp"], check=True)
    d = daemon()
    drop(d.units, "50-tc.unit", unit_text("tc_actions.bpf.o", hook="tc-ingress"))
    found = eventually(lambda: (m := samples(d.metrics_address())) and value(m, "bpfunits_hooks", state="unchanged") == 1
                       and m, 5, "the tc chain attached")
    assert value(found, "bpfunits_hooks", state="foreign") == 1
    assert [dict(labels)["hook"] for name, labels in found if name == "bpfunits_chain_info"] == ["tc-ingress"]
