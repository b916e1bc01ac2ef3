"""Probing the kernel's features without touching any real interface, and deciding from what it
found: backends, and whether bpfunits can run at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bpfunits.cli import main
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import probe
from bpfunits.hooks.probe import FEATURES, Features, TcBackend, XdpBackend, choose_tc_backend, choose_xdp_backend

NEW = Features.assume()
OLD = Features.assume("5.10.0-46-amd64", tcx=False, tcx_query=False, bpf_loop=False)
ANCIENT = Features.assume("4.19.0", xdp_link=False, link_update=False, xdp_netlink_replace=False,
                          map_freeze=False, subprog_tail_calls=False, tcx=False, tcx_query=False)


def _release(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()))


@pytest.mark.kernel
@pytest.mark.matrix
def test_probe_agrees_with_the_kernel_release():
    """Each feature is found exactly on kernels at least as new as the release named for it,
    which this test checks on every kernel of the matrix (freplace and fentry may be refused by
    policy, and a kernel may be built without kprobe or uprobe events)."""
    probe.features.cache_clear()
    home = os.readlink("/proc/thread-self/ns/net")
    found = probe.features()
    assert os.readlink("/proc/thread-self/ns/net") == home  # the probes' namespaces were private
    release = _release(found.kernel)
    for p in found.probed:
        if p.feature in (probe.FREPLACE, probe.TRACING_PROGS) and not p.available:
            assert "Operation not permitted" in p.reason  # refused by policy (this host's kernel)
            continue
        if p.feature in (probe.KPROBE_EVENTS, probe.UPROBE_EVENTS) and not p.available:
            assert p.reason.startswith("no /sys/bus/event_source/devices/")  # built without them (this host's)
            continue
        expected = release >= _release(p.feature.since)
        if p.feature is probe.CGROUP_MPROG and p.available:
            continue  # Debian's 6.12 carries it: it ordered two cgroup links there, by BPF_F_BEFORE
        assert p.available == expected, (p.feature.key, p.reason)
        assert bool(p.reason) != p.available
    assert found.unmet() == []


def test_memlock_is_lifted_as_far_as_this_process_may():
    script = (
        "import resource; from bpfunits.hooks import probe\n"
        "hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]\n"
        "resource.setrlimit(resource.RLIMIT_MEMLOCK, (65536, hard))\n"
        "probe._lift_memlock_limit()\n"
        "print(*resource.getrlimit(resource.RLIMIT_MEMLOCK))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    soft, hard = map(int, done.stdout.split())
    # As high as this process may go: unlimited with CAP_SYS_RESOURCE, else its hard limit.
    assert soft == hard and soft > 65536


@pytest.mark.kernel
def test_an_unknown_helper_is_found_missing():
    reason = probe._helper(10_000)()
    assert reason is not None and "invalid func" in reason


def test_auto_picks_the_best_the_kernel_has():
    assert (choose_xdp_backend(XdpBackend.AUTO, NEW), choose_tc_backend(TcBackend.AUTO, NEW)) == (
        XdpBackend.LINK, TcBackend.TCX
    )
    assert choose_tc_backend(TcBackend.AUTO, OLD) is TcBackend.CLS_BPF
    no_links = Features.assume(xdp_link=False, link_update=False)
    assert choose_xdp_backend(XdpBackend.AUTO, no_links) is XdpBackend.NETLINK
    # A link that cannot be updated could not swap a chain: netlink can.
    assert choose_xdp_backend(XdpBackend.AUTO, Features.assume(link_update=False)) is XdpBackend.NETLINK


def test_forced_backends_are_kept_when_available():
    assert choose_xdp_backend(XdpBackend.NETLINK, NEW) is XdpBackend.NETLINK
    assert choose_tc_backend(TcBackend.CLS_BPF, NEW) is TcBackend.CLS_BPF
    assert choose_xdp_backend(XdpBackend.LINK, OLD) is XdpBackend.LINK


def test_forcing_a_missing_feature_names_the_release_that_brought_it():
    with pytest.raises(BpfUnitsError, match=r"tc backend 'tcx' was asked for, but this kernel \(5.10.0-46-amd64\) "
                                            r"lacks tcx links on tc hooks.*Linux 6.6"):
        choose_tc_backend(TcBackend.TCX, OLD)
    with pytest.raises(BpfUnitsError, match=r"XDP backend 'link' .* lacks XDP through bpf_link.*Linux 5.9"):
        choose_xdp_backend(XdpBackend.LINK, ANCIENT)
    with pytest.raises(BpfUnitsError, match=r"XDP backend 'netlink' .*XDP_FLAGS_REPLACE.*Linux 5.7"):
        choose_xdp_backend(XdpBackend.NETLINK, ANCIENT)


def test_a_kernel_without_what_bpfunits_needs_is_refused_naming_each_missing_feature():
    NEW.require_supported()
    OLD.require_supported()  # 5.10: the oldest tested
    with pytest.raises(BpfUnitsError) as refused:
        ANCIENT.require_supported()
    assert str(refused.value).splitlines() == [
        "this kernel (4.19.0) cannot run bpfunits (tested on Linux 5.10 and newer; `bpfunits probe` shows every feature):",
        "  linking chains: needs frozen read-only maps (BPF_MAP_FREEZE) (Linux 5.2)",
        "  swapping an XDP chain atomically: needs XDP through bpf_link (BPF_LINK_CREATE) (Linux 5.9) "
        "or XDP_FLAGS_REPLACE with IFLA_XDP_EXPECTED_FD (Linux 5.7)",
    ]


def test_every_feature_has_a_probe_and_a_release():
    assert set(probe._PROBES) == set(FEATURES)
    assert all(_release(f.since) >= (4, 0) for f in FEATURES)


@pytest.mark.kernel
@pytest.mark.matrix
def test_probe_command_prints_features_and_backends(capsys):
    assert main(["probe"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"kernel {os.uname().release}\n")
    assert "  tcx_query " in out and "backends: xdp " in out
    assert main(["probe", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document["features"]) == {f.key for f in FEATURES}
    assert document["backends"]["tc"] in ("tcx", "cls_bpf") and document["errors"] == []


@pytest.mark.kernel
def test_probe_command_fails_when_a_configured_backend_is_missing(tmp_path, capsys):
    config = tmp_path / "bpfunits.yaml"
    config.write_text("tc_backend: tcx\n")
    expected = 0 if probe.features().has(probe.TCX) else 1
    assert main(["probe", "--config", str(config)]) == expected
    if expected:
        assert "error: tc backend 'tcx' was asked for" in capsys.readouterr().out


def test_a_feature_is_probed_only_when_asked_about():
    """An apply that changes nothing needs no way to swap XDP programs by netlink (the slowest
    probe, ~0.2 s) where XDP links work, nor cls_bpf where tcx does."""
    asked = []

    def probing(feature: probe.Feature) -> probe.Probed:
        asked.append(feature)
        return probe.Probed(feature, True, "")

    found = Features("6.18", {}, probing)
    found.require_supported()
    assert probe.XDP_REPLACE not in asked and probe.CLS_BPF not in asked
    assert set(asked) == {probe.JMP32, probe.BPF_CALLS, probe.MAP_FREEZE, probe.XDP_LINK, probe.TCX}
    assert len(found.probed) == len(FEATURES) and len(asked) == len(FEATURES), "each probed once"


def test_probes_asked_from_two_threads_run_one_at_a_time():
    """They share one namespace: a probe of the daemon's reconcile and one of a metrics scrape
    must not attach to its lo at the same moment."""
    import threading
    import time

    running, overlapped = [], []

    def probing(feature: probe.Feature) -> probe.Probed:
        running.append(feature)
        if len(running) > 1:
            overlapped.append(feature)
        time.sleep(0.05)
        running.remove(feature)
        return probe.Probed(feature, True, "")

    found = Features("6.18", {}, probing)
    threads = [threading.Thread(target=found.has, args=(f,)) for f in (probe.XDP_LINK, probe.XDP_REPLACE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlapped == [] and found.has(probe.XDP_LINK) and found.has(probe.XDP_REPLACE)
