"""Issue 11 #8: a kill between attaching a chain and pinning it (after the netlink attach; at the
link-new -> link rename) leaves bpfunits' own chain attached without its pin. bpfunits recognises
its chains by their sealed manifest naming its state root, and adopts them: status shows the chain,
the next apply re-pins it without a swap, and removing the units detaches it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.sys import netns
from bpfunits.hooks.observe import observe
from tests.hardening.statecli import hooks, run, unit
from tests.unitfiles import write

pytestmark = pytest.mark.kernel
REPO = Path(__file__).resolve().parents[2]

# `apply`, SIGKILLed at one point: right after the netlink attach (pinning the program as ours), or
# at the rename that makes a link's pin final.
KILLED_APPLY = """
import os, signal, sys
from bpfunits.sys import bpf

point, argv = sys.argv[1], sys.argv[2:]
real_pin, real_replace = bpf.obj_pin, os.replace

def obj_pin(fd, path):
    if point == "netlink" and path.endswith("/prog-new"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_pin(fd, path)

def replace(src, dst, **kw):
    if point == "link" and str(dst).endswith("/link"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, **kw)

bpf.obj_pin, os.replace = obj_pin, replace
from bpfunits.cli import main
sys.exit(main(argv))
"""


def _xdp(ns: str, ifindex: int, root):
    with netns.inside(ns):
        return observe(ifindex, Hook.XDP, root).programs


@pytest.mark.parametrize("backend", ["netlink", "link"])
def test_own_chains_orphaned_by_a_kill_between_attach_and_pin_are_adopted(
    tmp_path, capsys, veth_pair, bpffs_root, bpf_objects, backend
):
    units, config = tmp_path / "units", tmp_path / "bpfunits.yaml"
    write(units, "count.unit", unit("counter.bpf.o"))
    write(tmp_path, "bpfunits.yaml", f"xdp_backend: {backend}\n")
    argv = ["apply", "--config", str(config), "--netns", veth_pair.ns_a, "--units-dir", str(units),
            "--bpffs-root", str(bpffs_root.path)]
    killed = subprocess.run([sys.executable, "-c", KILLED_APPLY, backend, *argv], cwd=REPO, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()
    (orphan,) = _xdp(veth_pair.ns_a, veth_pair.ifindex_a, bpffs_root)
    with netns.inside(veth_pair.ns_a):
        pin = bpffs_root.hook_path(veth_pair.ifindex_a, Hook.XDP) / ("prog" if backend == "netlink" else "link")
    assert not pin.exists(), "attached, but not pinned"

    code, doc = run(capsys, "status", veth_pair.ns_a, units, bpffs_root.path, "--config", str(config))
    (xdp,) = [h for h in doc["hooks"] if h["hook"] == "xdp"]
    assert code == 0 and xdp["program"]["id"] == orphan.prog_id and xdp["foreign"] == []
    assert [(u["unit"], u["state"]) for u in xdp["units"]] == [("count", "active")]

    code, doc = run(capsys, "apply", veth_pair.ns_a, units, bpffs_root.path, "--config", str(config))
    got = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert code == 0 and got["outcome"] == "unchanged" and got["prog_id"] == orphan.prog_id, "adopted, not swapped"
    assert pin.exists(), "pinned in its hook folder now"

    (units / "count.unit").unlink()
    code, doc = run(capsys, "apply", veth_pair.ns_a, units, bpffs_root.path, "--config", str(config))
    assert code == 2 and hooks(doc)[(veth_pair.if_a, "xdp")]["action"] == "remove"
    assert _xdp(veth_pair.ns_a, veth_pair.ifindex_a, bpffs_root) == ()


def test_own_chains_orphaned_of_another_state_root_stay_foreign(tmp_path, capsys, veth_pair, make_bpffs_root,
                                                                bpf_objects):
    mine, theirs = make_bpffs_root(), make_bpffs_root()
    units = tmp_path / "units"
    write(units, "count.unit", unit("counter.bpf.o"))
    assert run(capsys, "apply", veth_pair.ns_a, units, theirs.path)[0] == 2
    code, doc = run(capsys, "apply", veth_pair.ns_a, units, mine.path)
    got = hooks(doc)[(veth_pair.if_a, "xdp")]
    assert code == 1 and got["outcome"] == "blocked" and "foreign XDP program" in got["reasons"][0]
