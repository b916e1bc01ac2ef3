"""bpf(2) wrappers against the running kernel."""

from __future__ import annotations

import os
import struct

import pytest

from bpfunits.hooks import probe
from bpfunits.sys import bpf

pytestmark = pytest.mark.kernel

# r0 = 2 (XDP_PASS); exit
RETURN_PASS = struct.pack("<BBhi", 0xB7, 0x00, 0, 2) + struct.pack("<BBhi", 0x95, 0, 0, 0)
# r0 = *(u32 *)(r10 + 0); exit -- reads an uninitialised stack slot
INVALID = struct.pack("<BBhi", 0x61, 0xA0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)
FRAME = bytes(64)


@pytest.fixture
def pass_prog():
    fd = bpf.prog_load(bpf.ProgType.XDP, RETURN_PASS, name="bu_pass")
    yield fd
    os.close(fd)


def test_loaded_program_runs_and_returns_its_verdict(pass_prog):
    run = bpf.prog_test_run(pass_prog, FRAME, repeat=10)
    assert run.retval == 2
    assert run.data_out == FRAME
    assert run.duration_ns >= 0


def test_prog_info_names_program_and_has_a_tag(pass_prog):
    info = bpf.prog_info(pass_prog)
    assert info.type == bpf.ProgType.XDP
    assert info.name == "bu_pass"
    assert len(info.tag) == 16 and int(info.tag, 16) >= 0
    assert info.map_ids == ()
    again = bpf.prog_get_fd_by_id(info.id)
    try:
        assert bpf.prog_info(again).tag == info.tag
    finally:
        os.close(again)


def test_invalid_program_raises_verifier_error_with_log():
    with pytest.raises(bpf.VerifierError) as caught:
        bpf.prog_load(bpf.ProgType.XDP, INVALID, name="bu_invalid")
    err = caught.value
    assert err.errno == 13  # EACCES
    assert "invalid read from stack" in err.log
    assert "BPF_PROG_LOAD" in str(err) and "invalid read from stack" in str(err)


def test_map_create_update_lookup_and_info():
    fd = bpf.map_create(bpf.MapType.HASH, 4, 8, 16, name="bu_map")
    try:
        key = struct.pack("<I", 7)
        assert bpf.map_lookup(fd, key, 8) is None
        bpf.map_update(fd, key, struct.pack("<Q", 42))
        assert bpf.map_lookup(fd, key, 8) == struct.pack("<Q", 42)
        assert bpf.map_keys(fd, 4) == [key]
        info = bpf.map_info(fd)
        assert (info.type, info.name, info.key_size, info.value_size, info.max_entries) == (
            bpf.MapType.HASH, "bu_map", 4, 8, 16,
        )
        with pytest.raises(bpf.BpfError) as caught:
            bpf.map_update(fd, key, struct.pack("<Q", 1), bpf.BPF_NOEXIST)
        assert caught.value.errno == 17 and "BPF_MAP_UPDATE_ELEM" in str(caught.value)
    finally:
        os.close(fd)


def test_percpu_lookup_returns_one_value_per_cpu():
    fd = bpf.map_create(bpf.MapType.PERCPU_ARRAY, 4, 4, 1)
    try:
        values = bpf.map_lookup_percpu(fd, bytes(4), 4)
        assert values == [bytes(4)] * bpf.possible_cpus()
    finally:
        os.close(fd)


def test_program_referencing_a_map_lists_it_in_prog_info():
    map_fd = bpf.map_create(bpf.MapType.ARRAY, 4, 8, 1)
    try:
        # ld_imm64 r1 = map fd (src_reg 1: BPF_PSEUDO_MAP_FD); r0 = 2; exit
        insns = (
            struct.pack("<BBhi", 0x18, 0x10 | 1, 0, map_fd) + struct.pack("<BBhi", 0, 0, 0, 0)
            + RETURN_PASS
        )
        prog = bpf.prog_load(bpf.ProgType.XDP, insns)
        try:
            assert bpf.prog_info(prog).map_ids == (bpf.map_info(map_fd).id,)
        finally:
            os.close(prog)
    finally:
        os.close(map_fd)


def test_missing_pin_raises_bpf_error_naming_the_path():
    with pytest.raises(bpf.BpfError) as caught:
        bpf.obj_get("/sys/fs/bpf/bpfunits-no-such-pin")
    assert caught.value.errno == 2 and "bpfunits-no-such-pin" in str(caught.value)


def test_pinned_program_outlives_its_fd_until_unpinned(bpffs_root, pass_prog):
    pin = bpffs_root.unit_dir("pinner") / "prog"
    bpf.obj_pin(pass_prog, str(pin))
    again = bpf.obj_get(str(pin))
    try:
        assert bpf.prog_info(again).id == bpf.prog_info(pass_prog).id
    finally:
        os.close(again)


def test_id_listings_include_a_loaded_program_and_map():
    map_fd = bpf.map_create(bpf.MapType.ARRAY, 4, 4, 1)
    prog_fd = bpf.prog_load(bpf.ProgType.XDP, RETURN_PASS)
    try:
        assert bpf.prog_info(prog_fd).id in bpf.prog_ids()
        assert bpf.map_info(map_fd).id in bpf.map_ids()
    finally:
        os.close(prog_fd)
        os.close(map_fd)


# r0 = -1 (TCX_NEXT); exit
RETURN_NEXT = struct.pack("<BBhi", 0xB7, 0x00, 0, -1) + struct.pack("<BBhi", 0x95, 0, 0, 0)


@pytest.fixture
def tc_progs():
    fds = [bpf.prog_load(bpf.ProgType.SCHED_CLS, RETURN_NEXT, name=f"bu_next{i}") for i in range(2)]
    yield fds
    for fd in fds:
        os.close(fd)


def test_xdp_link_create_info_update_detach(veth_pair, pass_prog):
    other = bpf.prog_load(bpf.ProgType.XDP, RETURN_PASS, name="bu_other")
    try:
        with veth_pair.inside_a():
            link = bpf.link_create(pass_prog, veth_pair.ifindex_a, bpf.AttachType.XDP)
            try:
                info = bpf.link_info(link)
                assert (info.type, info.ifindex, info.attach_type) == (
                    bpf.LinkType.XDP, veth_pair.ifindex_a, bpf.AttachType.XDP,
                )
                assert info.prog_id == bpf.prog_info(pass_prog).id
                assert info.id in bpf.link_ids()
                with pytest.raises(bpf.BpfError) as busy:
                    os.close(bpf.link_create(other, veth_pair.ifindex_a, bpf.AttachType.XDP))
                assert busy.value.errno == 16 and "BPF_LINK_CREATE" in str(busy.value)
                with pytest.raises(bpf.BpfError) as stale:
                    bpf.link_update(link, other, old_prog_fd=other)
                assert stale.value.errno == 1  # EPERM: the link does not run `other`
                bpf.link_update(link, other, old_prog_fd=pass_prog)
                assert bpf.link_info(link).prog_id == bpf.prog_info(other).id
                again = bpf.link_get_fd_by_id(info.id)
                os.close(again)
                bpf.link_detach(link)
                with pytest.raises(bpf.BpfError) as gone:
                    bpf.link_update(link, pass_prog)
                assert gone.value.errno == 67  # ENOLINK
            finally:
                os.close(link)
    finally:
        os.close(other)


@pytest.mark.needs(probe.TCX)
def test_tcx_links_query_order_and_revision(veth_pair, tc_progs):
    first, second = tc_progs
    with veth_pair.inside_a():
        ifindex = veth_pair.ifindex_a
        assert bpf.prog_query(ifindex, bpf.AttachType.TCX_INGRESS).prog_ids == ()
        link_a = bpf.link_create(first, ifindex, bpf.AttachType.TCX_INGRESS)
        try:
            revision = bpf.prog_query(ifindex, bpf.AttachType.TCX_INGRESS).revision
            with pytest.raises(bpf.BpfError) as stale:
                bpf.link_create(second, ifindex, bpf.AttachType.TCX_INGRESS, expected_revision=revision + 5)
            assert stale.value.errno == 116  # ESTALE
            first_id = bpf.prog_info(first).id
            link_b = bpf.link_create(
                second, ifindex, bpf.AttachType.TCX_INGRESS,
                flags=bpf.BPF_F_BEFORE, relative_id=first_id, expected_revision=revision,
            )
            try:
                query = bpf.prog_query(ifindex, bpf.AttachType.TCX_INGRESS)
                assert query.prog_ids == (bpf.prog_info(second).id, first_id)
                assert query.link_ids == (bpf.link_info(link_b).id, bpf.link_info(link_a).id)
                assert query.revision == revision + 1
                info = bpf.link_info(link_b)
                assert (info.type, info.ifindex, info.attach_type) == (
                    bpf.LinkType.TCX, ifindex, bpf.AttachType.TCX_INGRESS,
                )
            finally:
                os.close(link_b)
        finally:
            os.close(link_a)
        assert bpf.prog_query(ifindex, bpf.AttachType.TCX_INGRESS).prog_ids == ()


@pytest.mark.needs(probe.TCX)
def test_prog_query_grows_its_buffers(veth_pair):
    fds = [bpf.prog_load(bpf.ProgType.SCHED_CLS, RETURN_NEXT) for _ in range(20)]
    links = []
    try:
        with veth_pair.inside_a():
            links = [bpf.link_create(fd, veth_pair.ifindex_a, bpf.AttachType.TCX_EGRESS) for fd in fds]
            query = bpf.prog_query(veth_pair.ifindex_a, bpf.AttachType.TCX_EGRESS)
        assert len(query.prog_ids) == len(query.link_ids) == 20
    finally:
        for fd in links + fds:
            os.close(fd)


def test_prog_info_lists_every_map_when_they_do_not_fit_the_room_first_asked(monkeypatch):
    monkeypatch.setattr(bpf, "MAP_IDS_ROOM", 1)  # a program's maps fit in 64: make the room short
    maps = [bpf.map_create(bpf.MapType.ARRAY, 4, 8, 1) for _ in range(3)]
    try:
        ld_maps = b"".join(struct.pack("<BBhi", 0x18, 0x10 | 1, 0, fd) + struct.pack("<BBhi", 0, 0, 0, 0)
                           for fd in maps)
        prog = bpf.prog_load(bpf.ProgType.XDP, ld_maps + RETURN_PASS)
        try:
            assert sorted(bpf.prog_info(prog).map_ids) == sorted(bpf.map_info(fd).id for fd in maps)
        finally:
            os.close(prog)
    finally:
        for fd in maps:
            os.close(fd)
