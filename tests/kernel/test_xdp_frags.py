"""XDP multi-buffer (frags): a chain of components that all declare it attaches where the MTU
needs it and sees whole jumbo frames; one that does not is refused there in native mode (plan in
advance on veth, apply on the kernel's word) and attaches in generic mode."""

from __future__ import annotations

import os
import struct
import subprocess
import time

import pytest

from bpfunits.hooks import frags
from bpfunits.sys import bpf
from tests.kernel.test_reconcile import cli, hooks, run_json, unit
from tests.timing import scaled
from tests.traffic import frame, send_frames
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
JUMBO = 9000


def set_mtu(pair, mtu: int) -> None:
    for ns, ifname in ((pair.ns_a, pair.if_a), (pair.ns_b, pair.if_b)):
        subprocess.run(["ip", "-n", ns, "link", "set", ifname, "mtu", str(mtu)], check=True, capture_output=True)


def cli_with(capsys, pair, units, root, tmp_path, settings: str, command: str = "apply"):
    config = tmp_path / "c.yaml"
    config.write_text(settings)
    return run_json(capsys, command, "--netns", pair.ns_a, "--units-dir", str(units), "--bpffs-root",
                    str(root.path), "--config", str(config), "--json", "--detailed-exitcode")


def packets_map(prog_id: int) -> tuple[int, int]:
    """The frames and bytes the frags counter of the chain with this id saw."""
    fds = bpf.prog_map_fds(prog_id)
    try:
        return tuple(struct.unpack("<Q", bpf.map_lookup(fds["packets"], struct.pack("<I", k), 8))[0] for k in (0, 1))
    finally:
        for fd in fds.values():
            os.close(fd)


def test_chain_of_frags_components_attaches_on_a_jumbo_mtu_and_sees_whole_frames(
    tmp_path, capsys, veth_pair, bpffs_root, bpf_objects
):
    set_mtu(veth_pair, JUMBO)
    units = tmp_path / "units"
    write(units, "10-frags.unit", unit("link_frags.bpf.o"))
    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    xdp = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert (code, xdp["outcome"]) == (2, "applied"), xdp
    send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i, size=8000) for i in range(5)])
    time.sleep(scaled(0.2))
    assert packets_map(xdp["prog_id"]) == (5, 5 * 8000)


def test_chain_with_a_component_without_frags_is_refused_on_a_jumbo_mtu(
    tmp_path, capsys, veth_pair, bpffs_root, bpf_objects
):
    set_mtu(veth_pair, JUMBO)
    units = tmp_path / "units"
    write(units, "10-frags.unit", unit("link_frags.bpf.o"))
    write(units, "20-count.unit", unit("counter.bpf.o", extra="After=10-frags"))
    for command in ("plan", "apply"):
        code, doc = cli(capsys, veth_pair, units, bpffs_root, command=command)
        xdp = hooks(doc)[(veth_pair.if_a, "xdp")]
        assert code == 1 and xdp["outcome"] == "failed", xdp
        assert f"{veth_pair.if_a}: its MTU {JUMBO} needs multi-buffer XDP" in xdp["errors"][0]
        assert 'unit 20-count does not declare it (SEC("xdp.frags"))' in xdp["errors"][0]
        assert xdp["prog_id"] is None  # nothing attached
    _, doc = run_json(capsys, "status", "--netns", veth_pair.ns_a, "--units-dir", str(units),
                      "--bpffs-root", str(bpffs_root.path), "--json")
    status = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert any("unit 20-count does not declare it" in e for e in status["errors"]), status
    set_mtu(veth_pair, frags.single_buffer_mtu())
    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    assert hooks(doc)[(veth_pair.if_a, "xdp")]["outcome"] == "applied"


@pytest.mark.parametrize("backend", ["link", "netlink"])
def test_the_kernels_mtu_refusal_in_native_mode_names_the_units_without_frags(
    tmp_path, capsys, veth_pair, bpffs_root, bpf_objects, backend
):
    set_mtu(veth_pair, JUMBO)
    units = tmp_path / "units"
    write(units, "20-count.unit", unit("counter.bpf.o"))
    code, doc = cli_with(capsys, veth_pair, units, bpffs_root, tmp_path, f"xdp_mode: driver\nxdp_backend: {backend}\n")
    xdp = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert (code, xdp["outcome"], xdp["prog_id"]) == (1, "failed", None), xdp
    assert f"{veth_pair.if_a}: its MTU {JUMBO} needs multi-buffer XDP in native mode" in xdp["errors"][0]
    assert 'unit 20-count does not declare it (SEC("xdp.frags"))' in xdp["errors"][0]
    # The kernel's own words: netlink carries the driver's message, a bpf_link the errno alone.
    said = "Peer MTU is too large to set XDP" if backend == "netlink" else "Numerical result out of range"
    assert "the kernel refused the chain: " in xdp["errors"][0] and said in xdp["errors"][0], xdp


def test_a_chain_without_frags_attaches_on_a_jumbo_mtu_in_generic_mode(
    tmp_path, capsys, veth_pair, bpffs_root, bpf_objects
):
    set_mtu(veth_pair, JUMBO)
    units = tmp_path / "units"
    write(units, "20-count.unit", unit("counter.bpf.o"))
    for command, outcome in (("plan", "planned"), ("apply", "applied")):
        code, doc = cli_with(capsys, veth_pair, units, bpffs_root, tmp_path, "xdp_mode: generic\n", command)
        xdp = hooks(doc)[(veth_pair.if_a, "xdp")]
        assert (code, xdp["outcome"]) == (2, outcome), xdp
    # Without the setting (auto, native on veth), what the kernel reports running decides.
    _, doc = run_json(capsys, "status", "--netns", veth_pair.ns_a, "--units-dir", str(units),
                      "--bpffs-root", str(bpffs_root.path), "--json")
    status = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert status["program"]["mode"] == "generic" and not status["errors"], status
