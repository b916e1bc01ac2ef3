"""The example programs of bpf/examples on real frames (BPF_PROG_TEST_RUN), and their units."""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.load import mappins
from bpfunits.sys import bpf
from bpfunits.load.load import load_object_program
from bpfunits.load.program import LoadedProgram
from bpfunits.reconcile.progcache import load_unit_program
from bpfunits.linker.component import component_of
from bpfunits.linker.layout import Mode
from bpfunits.linker.linker import link_chain
from bpfunits.units.search import load_units
from tests import examples_frames as f
from tests.fixtures.netns import ADDR_A, ADDR_B
from tests.timing import scaled

pytestmark = pytest.mark.kernel

XDP_DROP, XDP_PASS = 1, 2
TC_ACT_UNSPEC = -1
KEY0 = struct.pack("<I", 0)
EXAMPLE_UNITS = Path(__file__).resolve().parents[2] / "units.example.d"

# The built-in defaults (rodata) of the programs.
DEFAULT_BURST = 20
DEFAULT_MAX_CONNS = 100
ALLOW, DENY = 1, 2


@pytest.fixture
def load_example(bpf_objects, bpffs_root):
    """Load program `name` of bpf/examples/OBJ.bpf.o, pinning its maps where unit OBJ would;
    everything loaded is closed after the test (the bpffs_root fixture removes the pins)."""
    loaded: list[LoadedProgram] = []

    def _load(obj: str, name: str, hook: Hook = Hook.XDP) -> LoadedProgram:
        path = bpf_objects / "examples" / f"{obj}.bpf.o"
        prog = load_object_program(path, hook, bpffs_root.unit_path(obj), name=name)
        loaded.append(prog)
        return prog

    yield _load
    for prog in loaded:
        prog.close()


def run(prog: LoadedProgram, frame: bytes) -> int:
    return bpf.prog_test_run(prog.fd, frame).retval


def configure(prog: LoadedProgram, fmt: str, *values: int) -> None:
    bpf.map_update(prog.maps["config"].fd, KEY0, struct.pack(fmt, *values))


def u64_at(prog: LoadedProgram, map_name: str, key: bytes) -> int | None:
    raw = bpf.map_lookup(prog.maps[map_name].fd, key, 8)
    return None if raw is None else struct.unpack("<Q", raw)[0]


def percpu_sum(prog: LoadedProgram, map_name: str, key: int, fmt: str) -> tuple[int, ...]:
    """A per-CPU map's value under `key`, summed field by field over the CPUs."""
    size = struct.calcsize(fmt)
    values = bpf.map_lookup_percpu(prog.maps[map_name].fd, struct.pack("<I", key), size)
    return tuple(sum(col) for col in zip(*(struct.unpack(fmt, v) for v in values), strict=True))


def addr(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


# --- ratelimit ------------------------------------------------------------------------------


@pytest.fixture
def ratelimit(load_example):
    return load_example("ratelimit", "xdp_ratelimit")


def test_ratelimit_drops_syns_beyond_the_default_burst_per_source(ratelimit):
    # At the default 10 SYN/s a token takes 100 ms; these runs take a few ms.
    verdicts = [run(ratelimit, f.syn("198.18.1.1")) for _ in range(DEFAULT_BURST + 5)]
    assert verdicts == [XDP_PASS] * DEFAULT_BURST + [XDP_DROP] * 5
    assert run(ratelimit, f.syn("198.18.1.2")) == XDP_PASS  # another source has its own bucket
    for other in (
        f.tcp_v4("198.18.1.1", f.ACK),
        f.tcp_v4("198.18.1.1", f.SYN | f.ACK),
        f.tcp_v4("198.18.1.1", f.FIN | f.ACK),
        f.udp_v4("198.18.1.1"),
        f.icmp_v4("198.18.1.1"),
        f.syn_v6(),
        f.arp(),
    ):
        assert run(ratelimit, other) == XDP_PASS
    assert run(ratelimit, f.syn("198.18.1.1")) == XDP_DROP


def test_ratelimit_config_sets_rate_and_burst_and_the_bucket_refills(ratelimit):
    configure(ratelimit, "<II", 2, 3)  # 2 SYN/s (a token per 500 ms), bucket of 3
    src = "198.18.2.1"
    assert [run(ratelimit, f.syn(src)) for _ in range(4)] == [XDP_PASS] * 3 + [XDP_DROP]
    # 3.5 tokens' worth of time refills the bucket (3); the half token left is 250 ms of slack
    # before a fourth token could sneak in, so a slow machine does not make this flaky.
    time.sleep(1.75)
    assert [run(ratelimit, f.syn(src)) for _ in range(4)] == [XDP_PASS] * 3 + [XDP_DROP]


def test_ratelimit_parses_vlan_tags_and_ip_options(ratelimit):
    configure(ratelimit, "<II", 1, 1)
    tagged, with_options = "198.18.3.1", "198.18.3.2"
    assert [run(ratelimit, f.syn(tagged, vlan=7)) for _ in range(2)] == [XDP_PASS, XDP_DROP]
    options = bytes([1, 1, 1, 0])  # NOP NOP NOP EOL: ihl 6
    assert [run(ratelimit, f.syn(with_options, options=options)) for _ in range(2)] == [XDP_PASS, XDP_DROP]
    # A frame cut inside the TCP header is not a SYN it can see: it passes.
    assert run(ratelimit, f.syn(with_options, options=options)[:40]) == XDP_PASS


def test_ratelimit_state_survives_a_reload(load_example):
    first = load_example("ratelimit", "xdp_ratelimit")
    configure(first, "<II", 1, 2)
    assert [run(first, f.syn("198.18.4.1")) for _ in range(3)] == [XDP_PASS, XDP_PASS, XDP_DROP]
    first.close()
    again = load_example("ratelimit", "xdp_ratelimit")  # reuses the pinned config and buckets
    assert run(again, f.syn("198.18.4.1")) == XDP_DROP


# --- connlimit ------------------------------------------------------------------------------


@pytest.fixture
def connlimit(load_example):
    return load_example("connlimit", "xdp_connlimit")


def open_conns(prog: LoadedProgram, src: str) -> int | None:
    return u64_at(prog, "conns", addr(src))


def test_connlimit_drops_the_syn_beyond_the_limit_and_fin_or_rst_frees_a_slot(connlimit):
    configure(connlimit, "<I", 3)
    src = "198.18.5.1"
    assert [run(connlimit, f.syn(src, sport=p)) for p in range(1, 5)] == [XDP_PASS] * 3 + [XDP_DROP]
    assert open_conns(connlimit, src) == 3  # the dropped SYN opened nothing
    assert run(connlimit, f.syn(src, sport=1)) == XDP_PASS  # a retransmission counts once
    assert open_conns(connlimit, src) == 3
    assert run(connlimit, f.syn("198.18.5.2")) == XDP_PASS  # another source counts apart
    assert run(connlimit, f.tcp_v4(src, f.ACK, sport=1)) == XDP_PASS  # data neither opens nor closes
    assert run(connlimit, f.tcp_v4(src, f.FIN | f.ACK, sport=1)) == XDP_PASS
    assert open_conns(connlimit, src) == 2
    assert [run(connlimit, f.syn(src, sport=p)) for p in (5, 6)] == [XDP_PASS, XDP_DROP]
    assert run(connlimit, f.tcp_v4(src, f.RST, sport=2)) == XDP_PASS
    assert [run(connlimit, f.syn(src, sport=p)) for p in (7, 8)] == [XDP_PASS, XDP_DROP]


def test_connlimit_releases_each_connection_once(connlimit):
    configure(connlimit, "<I", 2)
    src = "198.18.5.3"
    run(connlimit, f.syn(src, sport=1))
    run(connlimit, f.syn(src, sport=2))
    for flags in (f.FIN | f.ACK, f.FIN | f.ACK, f.RST):  # one connection's end, seen three times
        assert run(connlimit, f.tcp_v4(src, flags, sport=1)) == XDP_PASS
    assert open_conns(connlimit, src) == 1
    assert run(connlimit, f.tcp_v4(src, f.FIN | f.ACK, sport=9)) == XDP_PASS  # one it never counted
    assert open_conns(connlimit, src) == 1
    assert [run(connlimit, f.syn(src, sport=p)) for p in (3, 4)] == [XDP_PASS, XDP_DROP]


def test_connlimit_default_limit(connlimit):
    src = "198.18.5.4"
    verdicts = [run(connlimit, f.syn(src, sport=p)) for p in range(1, DEFAULT_MAX_CONNS + 2)]
    assert verdicts == [XDP_PASS] * DEFAULT_MAX_CONNS + [XDP_DROP]
    assert run(connlimit, f.udp_v4(src)) == XDP_PASS
    assert run(connlimit, f.syn_v6()) == XDP_PASS


# --- filter ---------------------------------------------------------------------------------


@pytest.fixture
def filter_prog(load_example):
    return load_example("filter", "xdp_filter")


def add_prefix(prog: LoadedProgram, prefix: str, action: int) -> None:
    net, length = prefix.split("/")
    key = struct.pack("<I", int(length)) + addr(net)
    bpf.map_update(prog.maps["prefixes_v4"].fd, key, struct.pack("<I", action))


def matches(prog: LoadedProgram) -> list[int]:
    """Packets decided by: no prefix (the default), an allow prefix, a deny prefix."""
    return [percpu_sum(prog, "matches", slot, "<Q")[0] for slot in range(3)]


def test_filter_longest_prefix_decides_and_counts_matches(filter_prog):
    add_prefix(filter_prog, "198.18.0.0/16", DENY)
    add_prefix(filter_prog, "198.18.7.0/24", ALLOW)
    add_prefix(filter_prog, "198.18.7.66/32", DENY)
    assert run(filter_prog, f.syn("198.18.1.1")) == XDP_DROP  # the /16 denies
    assert run(filter_prog, f.udp_v4("198.18.200.9")) == XDP_DROP  # any protocol
    assert run(filter_prog, f.syn("198.18.7.9")) == XDP_PASS  # the /24 inside it allows
    assert run(filter_prog, f.syn("198.18.7.66")) == XDP_DROP  # the /32 inside that denies
    assert run(filter_prog, f.syn("198.19.0.1")) == XDP_PASS  # no prefix: default allow
    assert run(filter_prog, f.icmp_v4("198.18.1.1")) == XDP_DROP
    assert matches(filter_prog) == [1, 1, 4]


def test_filter_default_action_from_config(filter_prog):
    configure(filter_prog, "<I", DENY)  # an allow list
    add_prefix(filter_prog, "198.18.9.0/24", ALLOW)
    assert run(filter_prog, f.syn("198.19.0.1")) == XDP_DROP
    assert run(filter_prog, f.syn("198.18.9.1", vlan=3)) == XDP_PASS
    # What is not IPv4 is not the filter's business.
    assert run(filter_prog, f.syn_v6()) == XDP_PASS
    assert run(filter_prog, f.arp()) == XDP_PASS
    assert matches(filter_prog) == [1, 1, 0]
    configure(filter_prog, "<I", 0)  # back to the built-in default: allow
    assert run(filter_prog, f.syn("198.19.0.1")) == XDP_PASS


# --- counter --------------------------------------------------------------------------------

TCP, UDP, ICMP, OTHER = range(4)


def test_counter_counts_packets_and_bytes_per_protocol_and_returns_next(load_example):
    counter = load_example("counter", "tc_counter", Hook.TC_EGRESS)
    frames = {
        TCP: [f.syn("198.18.6.1"), f.tcp_v4("198.18.6.1", f.ACK, vlan=5), f.syn_v6()],
        UDP: [f.udp_v4("198.18.6.1"), f.udp_v4("198.18.6.2", vlan=9)],
        ICMP: [f.icmp_v4("198.18.6.1"), f.icmp_v6()],
        OTHER: [f.arp()],
    }
    for batch in frames.values():
        for frame in batch:
            assert run(counter, frame) == TC_ACT_UNSPEC
    for cls, batch in frames.items():
        assert percpu_sum(counter, "traffic", cls, "<QQ") == (len(batch), sum(map(len, batch)))


# --- the example units ----------------------------------------------------------------------


def test_example_units_load_their_programs(bpf_objects, bpffs_root):
    result = load_units((EXAMPLE_UNITS,), required=True)
    assert not result.diagnostics
    expected = {
        "ratelimit": ("xdp_ratelimit", Hook.XDP, {"config", "syn_buckets"}),
        "connlimit": ("xdp_connlimit", Hook.XDP, {"config", "conns", "flows"}),
        "filter": ("xdp_filter", Hook.XDP, {"config", "prefixes_v4", "matches"}),
        "counter": ("tc_counter", Hook.TC_EGRESS, {"traffic"}),
    }
    assert set(result.units) == set(expected)
    for name, unit in result.units.items():
        program, hook, pinned = expected[name]
        assert unit.hook is hook
        with load_unit_program(unit, bpffs_root) as prog:
            assert prog.name == program
            mappins.commit(bpffs_root, name, prog.maps.values())
            assert {p.name for p in bpffs_root.unit_path(name).iterdir()} == pinned
            want = TC_ACT_UNSPEC if hook.is_tc else XDP_PASS
            assert run(prog, f.syn("198.18.8.1")) == want


def test_example_xdp_units_linked_into_one_program_keep_their_behaviour(bpf_objects, bpffs_root):
    """ratelimit -> connlimit -> filter, spliced inline by the linker: each still sees only its
    own maps, and the first drop ends the chain (later programs never count the packet)."""
    units = load_units((EXAMPLE_UNITS,), required=True).units
    order = ["ratelimit", "connlimit", "filter"]
    loaded = {name: load_unit_program(units[name], bpffs_root) for name in order}
    try:
        configure(loaded["ratelimit"], "<II", 1, 3)
        configure(loaded["connlimit"], "<I", 2)
        add_prefix(loaded["filter"], "198.18.66.0/24", DENY)
        components = [component_of(n, loaded[n], units[n].proceed_codes) for n in order]
        with link_chain(Hook.XDP, components) as chain:
            assert {p.mode for p in chain.placements} == {Mode.INLINE}
            fd = chain.load()
            try:
                chained = [bpf.prog_test_run(fd, f.syn("198.18.65.1", sport=p)).retval for p in range(1, 5)]
                # connlimit stops the 3rd SYN; ratelimit spent 3 tokens and stops the 4th.
                assert chained == [XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP]
                assert open_conns(loaded["connlimit"], "198.18.65.1") == 2
                assert bpf.prog_test_run(fd, f.syn("198.18.66.1")).retval == XDP_DROP  # filter
                assert bpf.prog_test_run(fd, f.udp_v4("198.18.65.1")).retval == XDP_PASS
                # The filter saw the two SYNs that got through, the denied one and the UDP packet.
                assert matches(loaded["filter"]) == [3, 0, 1]
            finally:
                os.close(fd)
    finally:
        for prog in loaded.values():
            prog.close()


# --- on a live interface --------------------------------------------------------------------


def udp_exchange(veth_pair, count: int, port: int) -> int:
    """Send `count` datagrams from namespace a to b; returns how many b received."""
    with veth_pair.inside_b():
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with veth_pair.inside_a():
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind((ADDR_B, port))
        rx.settimeout(scaled(0.3))
        for n in range(count):
            tx.sendto(b"datagram %d" % n, (ADDR_B, port))
        received = 0
        try:
            while received < count:
                rx.recv(64)
                received += 1
        except TimeoutError:
            pass
        return received


def test_filter_and_counter_on_live_veth_traffic(load_example, veth_pair):
    """The filter on b's XDP hook and the counter on a's tc egress hook, on real datagrams."""
    filter_prog = load_example("filter", "xdp_filter")
    counter = load_example("counter", "tc_counter", Hook.TC_EGRESS)
    add_prefix(filter_prog, f"{ADDR_A}/32", DENY)
    with veth_pair.inside_b():
        xdp_link = bpf.link_create(filter_prog.fd, veth_pair.ifindex_b, bpf.AttachType.XDP)
    try:
        with veth_pair.inside_a():
            tcx_link = bpf.link_create(counter.fd, veth_pair.ifindex_a, bpf.AttachType.TCX_EGRESS)
        try:
            assert udp_exchange(veth_pair, 5, 5353) == 0
            add_prefix(filter_prog, f"{ADDR_A}/32", ALLOW)
            assert udp_exchange(veth_pair, 5, 5354) == 5
        finally:
            os.close(tcx_link)
    finally:
        os.close(xdp_link)
    assert matches(filter_prog)[1:] == [5, 5]
    datagram = 14 + 20 + 8 + len(b"datagram 0")
    assert percpu_sum(counter, "traffic", UDP, "<QQ") == (10, 10 * datagram)
    assert percpu_sum(counter, "traffic", OTHER, "<QQ")[0] >= 1  # a's ARP request, at least
