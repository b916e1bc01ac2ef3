"""What bpfunits attaches keeps running after the attaching process exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.hooks import attach
from bpfunits.hooks.observe import Backend, observe
from tests.fixtures.counters import count_of_prog
from tests.fixtures.features import tcx_param
from tests.timing import scaled
from tests.traffic import through_hook

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]

# Loads a counter, attaches it inside namespace argv[1] to ifindex argv[2], hook argv[3] with
# backend argv[4], prints the program id, and exits: its fds all close.
ATTACHER = """
import sys
from bpfunits.hooks import Hook
from bpfunits.sys import netns
from bpfunits.hooks.attach import AttachOptions, attach
from bpfunits.state.bpffs import StateRoot
from bpfunits.load.load import load_object_program
from bpfunits.hooks.probe import TcBackend, XdpBackend

ns, ifindex, hook, backend, obj, root = sys.argv[1:]
hook = Hook(hook)
root = StateRoot(root)
kind = "tc" if hook.is_tc else "xdp"
prog = load_object_program(obj, hook, root.path / "attacher", name=f"{kind}_count_a")
options = AttachOptions(tc_backend=TcBackend(backend)) if hook.is_tc else AttachOptions(xdp_backend=XdpBackend(backend))
with netns.inside(ns):
    print(attach(int(ifindex), hook, prog.fd, root, options).prog_id)
"""


@pytest.mark.parametrize(
    "hook, backend",
    [(Hook.XDP, "link"), (Hook.XDP, "netlink"), tcx_param(Hook.TC_INGRESS, "tcx"), (Hook.TC_INGRESS, "cls_bpf")],
)
def test_attachment_outlives_the_attaching_process(veth_pair, bpffs_root, bpf_objects, hook, backend):
    observed_as = {"link": Backend.XDP_LINK, "netlink": Backend.XDP_NETLINK, "tcx": Backend.TCX, "cls_bpf": Backend.CLS_BPF}
    done = subprocess.run(
        [sys.executable, "-c", ATTACHER, veth_pair.ns_a, str(veth_pair.ifindex_a), hook.value, backend,
         str(bpf_objects / "attach_counter.bpf.o"), str(bpffs_root.path)],
        cwd=REPO, check=True, capture_output=True, text=True, timeout=scaled(60),
    )
    prog_id = int(done.stdout)

    assert through_hook(veth_pair, hook, 12) == 12
    assert count_of_prog(prog_id) == 12
    with veth_pair.inside_a():
        (running,) = observe(veth_pair.ifindex_a, hook, bpffs_root).programs
        assert (running.prog_id, running.backend, running.ours) == (prog_id, observed_as[backend], True)
        assert attach.detach(veth_pair.ifindex_a, hook, bpffs_root)
        assert observe(veth_pair.ifindex_a, hook, bpffs_root).programs == ()
