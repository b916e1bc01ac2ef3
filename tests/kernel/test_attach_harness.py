"""The namespace harness itself: a veth pair between two fresh namespaces carries test frames."""

import os

import pytest

from bpfunits.sys import netns
from tests.traffic import Receiver, frame, send_frames

pytestmark = pytest.mark.kernel


def test_frames_cross_the_pair(veth_pair):
    with Receiver(veth_pair.ns_a, veth_pair.if_a) as rx:
        sent = send_frames(veth_pair.ns_b, veth_pair.if_b, [frame(i) for i in range(100)])
        rx.wait_for(sent)
        assert rx.stop() == sent == 100


def test_inside_moves_only_this_thread_and_keeps_bpffs(veth_pair):
    home = os.readlink("/proc/thread-self/ns/net")
    with veth_pair.inside_a():
        assert os.readlink("/proc/thread-self/ns/net") != home
        assert netns.ifindex(veth_pair.if_a) == veth_pair.ifindex_a
        assert os.path.ismount("/sys/fs/bpf")
    assert os.readlink("/proc/thread-self/ns/net") == home


def test_missing_namespace_and_interface_are_clear_errors(veth_pair):
    with pytest.raises(netns.NetnsError, match="does not exist"), netns.inside("bu-no-such-ns"):
        pass
    with pytest.raises(netns.NetnsError, match="no interface"):
        netns.ifindex("bu-nothing", veth_pair.ns_a)
