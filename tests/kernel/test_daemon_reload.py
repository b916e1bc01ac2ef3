"""SIGHUP (`systemctl reload`) rereads the configuration before it reconciles: a new one takes
effect at once, an invalid one is logged and the running one stays in force."""

from __future__ import annotations

import signal
import subprocess

import pytest

from bpfunits.hooks import Hook
from bpfunits.sys import netns
from bpfunits.hooks.observe import observe
from tests.kernel.test_daemon import BPF, daemon, drop, eventually, unit_text  # noqa: F401 (fixture)

pytestmark = [pytest.mark.kernel, pytest.mark.matrix]


def _xdp(pair, root):
    with netns.inside(pair.ns_a):
        return observe(pair.ifindex_a, Hook.XDP, root).programs


def test_sighup_rereads_the_configuration(daemon, veth_pair, bpffs_root):  # noqa: F811 (the fixture imported above)
    subprocess.run(["ip", "-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a, "xdpgeneric", "obj",
                    str(BPF / "attach_foreign.bpf.o"), "sec", "xdp"], check=True)
    d = daemon()
    drop(d.units, "count.unit", unit_text("counter.bpf.o"))
    eventually(lambda: any("foreign XDP program" in r.get("message", "") for r in d.records()), 5,
               "the foreign program refused without takeover")
    (foreign,) = _xdp(veth_pair, bpffs_root)
    assert not foreign.ours

    # An invalid configuration changes nothing: the daemon says so and goes on with the old one.
    good = d.config.read_text()
    d.config.write_text(good + "resync_period: .nan\n")
    d.proc.send_signal(signal.SIGHUP)
    eventually(lambda: any("configuration not reloaded" in r.get("message", "") for r in d.records()), 5,
               "the invalid configuration logged")
    assert d.proc.poll() is None and _xdp(veth_pair, bpffs_root) == (foreign,)

    d.config.write_text(good + "takeover: ['bu*']\n")
    d.proc.send_signal(signal.SIGHUP)
    eventually(lambda: d.chain() == ("count",), 5, "takeover from the reloaded configuration")
    assert any(r.get("message") == "configuration reloaded" for r in d.records())
