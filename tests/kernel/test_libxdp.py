"""Coexistence with libxdp: an xdp-loader dispatcher is shown as foreign with its component
programs, left alone without `takeover`, replaced in one step with it; and xdp-loader does not
replace bpfunits' chain. The kernel tests need freplace (refused on some kernels: they skip
there) and xdp-loader."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bpfunits.hooks import Hook
from bpfunits.hooks import libxdp, probe
from bpfunits.sys import netns
from bpfunits.hooks.observe import observe
from tests.kernel.test_reconcile import BPF, cli, hooks, run_json, unit
from tests.unitfiles import write

XDP_LOADER = shutil.which("xdp-loader")


def needs_libxdp(test):
    for mark in (
        pytest.mark.kernel,
        pytest.mark.matrix,
        pytest.mark.needs(probe.FREPLACE),
        pytest.mark.skipif(XDP_LOADER is None, reason="xdp-loader (Debian's xdp-tools) is not installed"),
    ):
        test = mark(test)
    return test


def _v2(num: int, actions: list[int], prios: list[int]) -> bytes:
    pad = [0] * (libxdp.MAX_SLOTS - num)
    return struct.pack(f"<4B{3 * libxdp.MAX_SLOTS}I", libxdp.MAGIC, 2, num, 0, *actions, *pad, *prios, *pad,
                       *[0] * libxdp.MAX_SLOTS)


def test_dispatcher_configuration_of_both_versions_is_read():
    v2 = libxdp.parse_config(_v2(2, [1 << 2 | 1 << 31, 1 << 1 | 1 << 2], [10, 50]))
    assert v2 is not None and (v2.version, v2.run_prios) == (2, (10, 50))
    assert [libxdp.action_names(a) for a in v2.chain_call_actions] == [("pass",), ("drop", "pass")]
    v1 = struct.pack(f"<B3x{2 * libxdp.MAX_SLOTS}I", 1, 1 << 2, *[0] * 9, 20, *[0] * 9)
    got = libxdp.parse_config(v1)
    assert got is not None and (got.version, got.run_prios, got.chain_call_actions) == (1, (20,), (1 << 2,))


@pytest.mark.parametrize("value", [b"", bytes(124), _v2(0, [], []), _v2(1, [4], [50])[:-1]])
def test_values_libxdp_did_not_write_are_no_dispatcher(value):
    assert libxdp.parse_config(value) is None


def _xdp_loader(pair, *args: str) -> subprocess.CompletedProcess:
    # nsenter keeps this mount namespace, and with it the bpffs where libxdp pins its programs.
    return subprocess.run(["nsenter", f"--net=/run/netns/{pair.ns_a}", XDP_LOADER, *args],
                          capture_output=True, text=True, timeout=120)


@contextmanager
def xdp_loader_dispatcher(pair, bpffs_root, *objects: str) -> Iterator[int]:
    """Programs loaded by xdp-loader on `pair.if_a` behind libxdp's dispatcher; yields its id.
    Afterwards libxdp's pins of that dispatcher are gone, whoever replaced it."""
    done = _xdp_loader(pair, "load", "-m", "skb", pair.if_a, *(str(BPF / o) for o in objects))
    assert done.returncode == 0, done.stderr
    with netns.inside(pair.ns_a):
        (running,) = observe(pair.ifindex_a, Hook.XDP, bpffs_root).programs
    try:
        yield running.prog_id
    finally:
        _xdp_loader(pair, "unload", "--all", pair.if_a)
        shutil.rmtree(libxdp.PIN_ROOT / f"dispatch-{pair.ifindex_a}-{running.prog_id}", ignore_errors=True)


@needs_libxdp
def test_a_dispatcher_is_foreign_with_its_programs_and_kept_without_takeover(
    tmp_path, capsys, veth_pair, bpffs_root, bpf_objects
):
    units = tmp_path / "units"
    write(units, "count.unit", unit("counter.bpf.o"))
    with xdp_loader_dispatcher(veth_pair, bpffs_root, "counter.bpf.o", "globals.bpf.o") as dispatcher_id:
        code, doc = run_json(capsys, "status", "--netns", veth_pair.ns_a, "--units-dir", str(units),
                             "--bpffs-root", str(bpffs_root.path), "--json")
        (foreign,) = hooks(doc)[(veth_pair.if_a, "xdp")]["foreign"]
        assert (foreign["id"], foreign["name"]) == (dispatcher_id, libxdp.PROG_NAME)
        programs = foreign["dispatcher"]["programs"]
        assert sorted(p["name"] for p in programs) == ["count_packets", "use_globals"]
        assert {(p["run_prio"], tuple(p["chain_call_actions"])) for p in programs} == {(50, ("pass",))}
        assert all(p["id"] for p in programs)

        code, doc = cli(capsys, veth_pair, units, bpffs_root)
        got = hooks(doc)[(veth_pair.if_a, "xdp")]
        assert code == 1 and got["outcome"] == "blocked"
        with netns.inside(veth_pair.ns_a):
            (running,) = observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs
        assert (running.prog_id, running.ours) == (dispatcher_id, False)


@needs_libxdp
def test_takeover_replaces_a_dispatcher_in_one_step(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "count.unit", unit("counter.bpf.o"))
    config = tmp_path / "c.yaml"
    config.write_text("takeover: ['bu*']\n")
    with xdp_loader_dispatcher(veth_pair, bpffs_root, "counter.bpf.o") as dispatcher_id:
        code, doc = run_json(capsys, "apply", "--netns", veth_pair.ns_a, "--units-dir", str(units),
                             "--bpffs-root", str(bpffs_root.path), "--config", str(config), "--json")
        got = hooks(doc)[(veth_pair.if_a, "xdp")]
        assert code == 0 and got["outcome"] == "applied", got
        with netns.inside(veth_pair.ns_a):
            (running,) = observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs
        assert running.prog_id != dispatcher_id and (running.prog_id, running.ours) == (got["prog_id"], True)


@needs_libxdp
def test_xdp_loader_does_not_replace_a_chain(tmp_path, capsys, veth_pair, bpffs_root, bpf_objects):
    units = tmp_path / "units"
    write(units, "count.unit", unit("counter.bpf.o"))
    code, doc = cli(capsys, veth_pair, units, bpffs_root)
    chain = hooks(doc)[(veth_pair.if_a, "xdp")]["prog_id"]
    refused = _xdp_loader(veth_pair, "load", "-m", "skb", veth_pair.if_a, str(BPF / "globals.bpf.o"))
    assert refused.returncode != 0
    with netns.inside(veth_pair.ns_a):
        (running,) = observe(veth_pair.ifindex_a, Hook.XDP, bpffs_root).programs
    assert (running.prog_id, running.ours) == (chain, True)
