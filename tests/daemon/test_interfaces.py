"""Netlink events from veth pairs in namespaces the test creates (the veth_pair fixture)."""

from __future__ import annotations

import logging
import os
import secrets
import struct
import subprocess
import threading

import pytest

from bpfunits.daemon import Daemon, Trigger
from bpfunits.errors import BpfUnitsError
from bpfunits.daemon.interfaces import POLL_INTERVAL, InterfaceMonitor
from bpfunits.sys import bpf
from bpfunits.hooks.xdp import XDP_FLAGS_SKB_MODE
from tests.daemon.harness import Recorder, running

pytestmark = pytest.mark.kernel


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def reasons(recorder: Recorder) -> list[str]:
    return [t.reason for t in recorder.triggers]


def test_a_new_veth_in_the_watched_namespace_reconciles(veth_pair, tmp_path):
    recorder = Recorder()
    name = f"bu{secrets.token_hex(3)}c"
    with running(recorder, [tmp_path], netns=veth_pair.ns_a):
        ip("-n", veth_pair.ns_a, "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
        trigger = recorder.wait(2, timeout=2.0)[1]
        assert trigger.reason == "interfaces"
        assert f"{name} appeared" in trigger.detail
        recorder.quiet(0.5)
        ip("-n", veth_pair.ns_a, "link", "del", name)
        trigger = recorder.wait(3, timeout=2.0)[2]
        assert trigger.reason == "interfaces"
        assert f"{name} disappeared" in trigger.detail


def test_a_rename_reconciles(veth_pair, tmp_path):
    recorder = Recorder()
    new_name = f"bu{secrets.token_hex(3)}r"
    ip("-n", veth_pair.ns_a, "link", "set", veth_pair.if_a, "down")
    with running(recorder, [tmp_path], netns=veth_pair.ns_a):
        ip("-n", veth_pair.ns_a, "link", "set", veth_pair.if_a, "name", new_name)
        assert recorder.wait(2)[1] == Trigger("interfaces", f"{veth_pair.if_a} renamed {new_name}")


def test_other_namespaces_are_not_watched(veth_pair, tmp_path):
    recorder = Recorder()
    name = f"bu{secrets.token_hex(3)}c"
    with running(recorder, [tmp_path], netns=veth_pair.ns_a):
        ip("-n", veth_pair.ns_b, "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
        recorder.quiet(0.8)
        assert reasons(recorder) == ["start"]


def test_link_state_changes_that_are_not_xdp_do_not_reconcile(veth_pair, tmp_path):
    recorder = Recorder()
    with running(recorder, [tmp_path], netns=veth_pair.ns_a):
        ip("-n", veth_pair.ns_a, "link", "set", veth_pair.if_a, "mtu", "1400")
        ip("-n", veth_pair.ns_a, "link", "set", veth_pair.if_a, "down")
        ip("-n", veth_pair.ns_a, "link", "set", veth_pair.if_a, "up")
        recorder.quiet(0.8)
        assert reasons(recorder) == ["start"]


def test_foreign_xdp_attach_replace_and_detach_reconcile(veth_pair, tmp_path, bpf_objects):
    recorder = Recorder()
    with running(recorder, [tmp_path], netns=veth_pair.ns_a):
        ip("-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a,
           "xdpgeneric", "obj", str(bpf_objects / "counter.bpf.o"), "sec", "xdp")
        assert recorder.wait(2)[1] == Trigger("xdp", veth_pair.if_a)
        recorder.quiet(0.5)
        ip("-force", "-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a,
           "xdpgeneric", "obj", str(bpf_objects / "dropper.bpf.o"), "sec", "xdp")
        assert recorder.wait(3)[2] == Trigger("xdp", veth_pair.if_a)
        recorder.quiet(0.5)
        ip("-n", veth_pair.ns_a, "link", "set", "dev", veth_pair.if_a, "xdpgeneric", "off")
        assert recorder.wait(4)[3] == Trigger("xdp", veth_pair.if_a)


def test_foreign_xdp_bpf_link_on_a_down_interface_is_seen_by_polling(veth_pair, tmp_path):
    """Neither a bpf_link nor a down interface makes the kernel send a netlink message."""
    pass_all = struct.pack("<BBhi", 0xB7, 0, 0, 2) + struct.pack("<BBhi", 0x95, 0, 0, 0)  # r0 = XDP_PASS; exit
    ip("-n", veth_pair.ns_a, "link", "set", veth_pair.if_a, "down")
    prog_fd = bpf.prog_load(bpf.ProgType.XDP, pass_all, name="bu_daemon_test")
    recorder = Recorder()
    try:
        with running(recorder, [tmp_path], netns=veth_pair.ns_a):
            with veth_pair.inside_a():
                link_fd = bpf.link_create(prog_fd, veth_pair.ifindex_a, bpf.AttachType.XDP, flags=XDP_FLAGS_SKB_MODE)
            try:
                assert recorder.wait(2, timeout=POLL_INTERVAL + 1.5)[1] == Trigger("xdp", veth_pair.if_a)
            finally:
                os.close(link_fd)  # unpinned: the link and its attachment go with the fd
            assert recorder.wait(3, timeout=POLL_INTERVAL + 1.5)[2] == Trigger("xdp", veth_pair.if_a)
    finally:
        os.close(prog_fd)


def test_monitor_knows_the_interfaces_present_at_start(veth_pair):
    monitor = InterfaceMonitor(lambda trigger: None, logging.getLogger("bpfunits.daemon"), veth_pair.ns_a)
    monitor.start()
    try:
        names = {state.name for state in monitor.interfaces.values()}
        assert names == {"lo", veth_pair.if_a}
        assert monitor.interfaces[veth_pair.ifindex_a].xdp == ()
    finally:
        monitor.close()


def test_monitor_in_a_missing_namespace_fails_with_a_message():
    monitor = InterfaceMonitor(lambda trigger: None, logging.getLogger("bpfunits.daemon"), f"bu-{secrets.token_hex(3)}-x")
    with pytest.raises(BpfUnitsError, match="does not exist"):
        monitor.start()


def test_daemon_in_a_missing_namespace_fails_with_a_message(tmp_path):
    daemon = Daemon(reconcile=Recorder(), folders=[tmp_path], resync_period=60, netns=f"bu-{secrets.token_hex(3)}-x")
    with pytest.raises(BpfUnitsError, match="does not exist"):
        daemon.run()


def test_monitor_close_is_prompt(veth_pair):
    monitor = InterfaceMonitor(lambda trigger: None, logging.getLogger("bpfunits.daemon"), veth_pair.ns_a)
    monitor.start()
    closer = threading.Thread(target=monitor.close)
    closer.start()
    closer.join(1.0)
    assert not closer.is_alive()
