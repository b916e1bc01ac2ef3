"""Issue 12: a CLI apply starts from what the last one learnt about the programs on the hooks
(reconcile.factcache): it reads from the kernel which programs run where, and its pins, every
time, but not again what each chain is. A program it has not seen is read from the kernel."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bpfunits.config import load_config
from bpfunits.hooks import Hook
from bpfunits.hooks import observe as observing
from bpfunits.reconcile import factcache
from bpfunits.reconcile.engine import Outcome, reconcile
from bpfunits.state import pins
from bpfunits.sys import bpf, netns
from tests.unitfiles import write

pytestmark = [pytest.mark.kernel, pytest.mark.matrix]
BPF = Path(__file__).resolve().parents[2] / "bpf"
XDP_PASS = bytes.fromhex("b700000002000000" "9500000000000000")


@pytest.fixture
def rig(tmp_path, veth_pair, bpffs_root, bpf_objects, monkeypatch):
    units = tmp_path / "units"
    units.mkdir()
    write(units, "a.unit", f"[Program]\nObject={BPF / 'counter.bpf.o'}\n[Attach]\nHook=xdp\n"
                           f"Interfaces={veth_pair.if_a}\n")
    (tmp_path / "bpfunits.yaml").write_text(f"lock_file: {tmp_path / 'lock'}\nbpffs_root: {bpffs_root.path}\n"
                                            f"state_file: {tmp_path / 'run' / 'state.json'}\n")
    config = load_config(tmp_path / "bpfunits.yaml").override(units_dirs=[units])
    read = []  # the programs whose manifest was read from the kernel

    def counted(prog_id, map_ids=None):
        read.append(prog_id)
        return manifest_of(prog_id, map_ids)

    manifest_of = observing.read_manifest
    monkeypatch.setattr(observing, "read_manifest", counted)

    def apply():
        read.clear()
        with netns.inside(veth_pair.ns_a):
            return reconcile(config, apply=True)

    return apply, read, factcache.path_beside(config.state_file), veth_pair, bpffs_root


def test_a_second_apply_reads_no_manifest_and_a_replaced_program_is_read(rig):
    apply, read, cache, pair, root = rig
    assert apply().hooks[0].outcome is Outcome.APPLIED
    assert read and cache.exists()  # the chain it attached, read once, and kept
    assert apply().hooks[0].outcome is Outcome.UNCHANGED
    assert read == []

    # Someone swaps another program into the pinned link: a program id the cache has never seen.
    with netns.inside(pair.ns_a):
        hook_dir = root.hook_path(netns.ifindex(pair.if_a), Hook.XDP)
    other = bpf.prog_load(bpf.ProgType.XDP, XDP_PASS, name="bu_other", expected_attach_type=bpf.AttachType.XDP)
    try:
        pins.update_link(hook_dir, other)
        other_id = bpf.prog_info(other).id
    finally:
        os.close(other)
    result = apply()
    assert result.hooks[0].outcome is Outcome.APPLIED
    assert read == [other_id, result.hooks[0].prog_id]  # what it found, and the chain it put back


def test_a_cache_of_another_boot_is_read_from_the_kernel_again(rig):
    apply, read, cache, *_ = rig
    apply()
    document = json.loads(cache.read_text())
    document["boot"] = "another"
    cache.write_text(json.dumps(document))
    assert apply().hooks[0].outcome is Outcome.UNCHANGED
    assert len(read) == 1
