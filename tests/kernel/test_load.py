"""Loading units' programs from ELF objects with libbpf, on the real kernel."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.hooks import probe
from bpfunits.load import mappins
from bpfunits.sys import bpf
from bpfunits.load.load import (
    ChecksumMismatch,
    LoadedProgram,
    LoadError,
    ObjectNotFound,
    ProgramNotFound,
    ProgramRejected,
    WrongProgramType,
    load_object_program,
)
from bpfunits.reconcile.progcache import load_unit_program
from bpfunits.units.model import Program, Unit

pytestmark = pytest.mark.kernel

XDP_DROP, XDP_PASS = 1, 2
ZERO = bytes(4)


def frame(ethertype: int = 0x0800, size: int = 64, byte14: int = 0) -> bytes:
    """An Ethernet frame: broadcast destination, a local source, `ethertype`, then padding."""
    head = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", ethertype)
    return head + bytes([byte14]) + bytes(size - len(head) - 1)


def unit(objects: Path, obj: str, hook: Hook = Hook.XDP, name: str | None = None, **program) -> Unit:
    return Unit(
        name=f"{obj}.{hook.value}",
        path=objects / f"{obj}.unit",
        hook=hook,
        program=Program(object=objects / f"{obj}.bpf.o", name=name, **program),
        interfaces=("bu-none",),
        proceed_on=hook.default_proceed_on,
    )


@pytest.fixture
def load(bpf_objects, bpffs_root):
    """Load a unit's program from bpf/; everything loaded is closed after the test."""
    loaded: list[LoadedProgram] = []

    def _load(obj: str, hook: Hook = Hook.XDP, name: str | None = None, **program) -> LoadedProgram:
        prog = load_unit_program(unit(bpf_objects, obj, hook, name, **program), bpffs_root)
        loaded.append(prog)
        return prog

    yield _load
    for prog in loaded:
        prog.close()


def u64(raw: bytes | None) -> int:
    assert raw is not None
    return struct.unpack("<Q", raw)[0]


def insns(prog: LoadedProgram) -> list[tuple[int, int, int, int, int]]:
    """(code, dst, src, off, imm) per instruction slot."""
    out = []
    for i in range(0, len(prog.insns), 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", prog.insns, i)
        out.append((code, regs & 0xF, regs >> 4, off, imm))
    return out


def test_counter_counts_every_run(load):
    prog = load("counter")
    assert (prog.name, prog.hook, prog.prog_type) == ("count_packets", Hook.XDP, bpf.ProgType.XDP)
    assert bpf.prog_test_run(prog.fd, frame(), repeat=5).retval == XDP_PASS
    counts = prog.maps["packets"]
    assert (counts.key_size, counts.value_size, counts.max_entries) == (4, 8, 1)
    assert u64(bpf.map_lookup(counts.fd, ZERO, 8)) == 5


def test_loaded_program_reports_id_tag_digest_and_its_maps(load, bpf_objects):
    prog = load("counter")
    info = bpf.prog_info(prog.fd)
    assert (prog.id, prog.tag) == (info.id, info.tag)
    assert info.map_ids == (prog.maps["packets"].id,)
    assert prog.sha256 == hashlib.sha256((bpf_objects / "counter.bpf.o").read_bytes()).hexdigest()


def test_relocated_insns_embed_map_fds_and_load_again(load):
    prog = load("counter")
    ld_map = [i for i in insns(prog) if i[0] == 0x18 and i[2] == 1]  # ld_imm64 BPF_PSEUDO_MAP_FD
    assert [i[4] for i in ld_map] == [prog.maps["packets"].fd]
    again = bpf.prog_load(bpf.ProgType.XDP, prog.insns, expected_attach_type=bpf.AttachType.XDP)
    try:
        assert bpf.prog_test_run(again, frame()).retval == XDP_PASS
        assert u64(bpf.map_lookup(prog.maps["packets"].fd, ZERO, 8)) == 1
    finally:
        os.close(again)


@pytest.mark.parametrize(
    ("ethertype", "verdict"), [(0x88B5, XDP_DROP), (0x0800, XDP_PASS), (0x88B6, XDP_PASS)]
)
def test_dropper_drops_frames_matching_its_pattern(load, ethertype, verdict):
    prog = load("dropper")
    assert bpf.prog_test_run(prog.fd, frame(ethertype)).retval == verdict
    assert ".rodata" in next(name for name in prog.maps if name.endswith(".rodata"))


def test_rewriter_increments_byte_14(load):
    prog = load("rewriter")
    run = bpf.prog_test_run(prog.fd, frame(byte14=41))
    assert run.retval == XDP_PASS
    assert run.data_out == frame(byte14=42)


def test_globals_use_bss_data_and_rodata(load):
    prog = load("globals")
    assert bpf.prog_test_run(prog.fd, frame(), repeat=4).retval == XDP_PASS
    sections = {name.rsplit(".", 1)[1]: ref for name, ref in prog.maps.items()}
    assert set(sections) == {"bss", "data", "rodata"}
    bss = sections["bss"]
    raw = bpf.map_lookup(bss.fd, ZERO, bss.value_size)
    assert sorted(struct.unpack("<2Q", raw)) == [4, 12]  # seen, and total = 3 * seen


@pytest.mark.parametrize(("size", "verdict"), [(64, XDP_PASS), (40, XDP_DROP)])
def test_subprogram_is_appended_and_called(load, size, verdict):
    prog = load("subprog")
    assert any(code == 0x85 and src == 1 for code, _, src, _, _ in insns(prog))  # BPF_PSEUDO_CALL
    assert bpf.prog_test_run(prog.fd, frame(size=size)).retval == verdict


def test_tail_call_into_empty_slot_falls_through(load):
    prog = load("tailcall")
    assert bpf.prog_test_run(prog.fd, frame()).retval == XDP_PASS
    assert prog.maps["jmp_table"].type == bpf.MapType.PROG_ARRAY
    assert u64(bpf.map_lookup(prog.maps["calls"].fd, ZERO, 8)) == 1


def test_unknown_section_is_typed_from_the_hook(load):
    prog = load("oddsection")
    assert prog.prog_type == bpf.ProgType.XDP
    assert bpf.prog_test_run(prog.fd, frame()).retval == XDP_DROP


def test_mixed_object_loads_only_the_xdp_program(load):
    names_before = _loaded_names()
    prog = load("mixed")
    assert prog.name == "xdp_pass"
    assert bpf.prog_test_run(prog.fd, frame()).retval == XDP_PASS
    new = _loaded_names() - names_before
    assert "xdp_pass" in new and "count_writes" not in new


def _loaded_names() -> set[str]:
    names = set()
    for prog_id in bpf.prog_ids():
        try:
            fd = bpf.prog_get_fd_by_id(prog_id)
        except bpf.BpfError:
            continue  # gone meanwhile
        try:
            names.add(bpf.prog_info(fd).name)
        finally:
            os.close(fd)
    return names


def test_named_program_is_selected(load):
    assert load("mixed", name="xdp_pass").name == "xdp_pass"


@pytest.mark.matrix
def test_pinned_map_state_survives_a_reload(load, bpffs_root):
    first = load("pinned")
    pinned = first.maps["pinned_packets"]
    mappins.commit(bpffs_root, "pinned.xdp", first.maps.values())  # as apply does once a chain uses it
    bpf.map_update(pinned.fd, ZERO, struct.pack("<Q", 1000))
    first.close()
    second = load("pinned")
    assert second.maps["pinned_packets"].id == pinned.id
    assert bpf.prog_test_run(second.fd, frame()).retval == XDP_PASS
    assert u64(bpf.map_lookup(second.maps["pinned_packets"].fd, ZERO, 8)) == 1001


def test_unit_program_pins_its_stateful_maps_in_its_folder(load, bpffs_root):
    prog = load("counter")
    mappins.commit(bpffs_root, "counter.xdp", prog.maps.values())
    assert load("counter").maps["packets"].pinned_path == str(bpffs_root.unit_path("counter.xdp") / "packets")


def test_folder_is_not_left_behind_without_pins(bpf_objects, bpffs_root):
    folder = bpffs_root.unit_path("plain")
    with load_object_program(bpf_objects / "counter.bpf.o", Hook.XDP, folder):
        pass
    assert not folder.exists()


@pytest.mark.parametrize("hook", [Hook.TC_INGRESS, Hook.TC_EGRESS])
@pytest.mark.parametrize("action", range(-1, 9))
def test_tc_program_returns_the_action_in_byte_14(load, hook, action):
    prog = load("tc_actions", hook)
    assert prog.prog_type == bpf.ProgType.SCHED_CLS
    assert bpf.prog_test_run(prog.fd, frame(byte14=action & 0xFF)).retval == action
    assert u64(bpf.map_lookup(prog.maps["actions"].fd, struct.pack("<I", action + 1), 8)) == 1


@pytest.mark.needs(probe.BPF_LOOP)
def test_bpf_loop_callback_is_a_pseudo_func(load):
    prog = load("bpf_loop")
    assert any(code == 0x18 and src == 4 for code, _, src, _, _ in insns(prog))  # BPF_PSEUDO_FUNC
    assert bpf.prog_test_run(prog.fd, frame()).retval == XDP_PASS


def test_lower_level_load_needs_no_unit(bpf_objects, bpffs_root):
    with load_object_program(
        bpf_objects / "oddsection.bpf.o", Hook.XDP, bpffs_root.unit_path("linker-test")
    ) as prog:
        assert bpf.prog_test_run(prog.fd, frame()).retval == XDP_DROP
    assert prog.closed


def test_maps_are_never_pinned_into_the_bpffs_root(bpf_objects):
    with pytest.raises(LoadError, match="refusing to pin maps into the bpffs mount point"):
        load_object_program(bpf_objects / "pinned.bpf.o", Hook.XDP, Path("/sys/fs/bpf"))
    assert not Path("/sys/fs/bpf/pinned_packets").exists()


# --- errors ----------------------------------------------------------------------------------


def test_verifier_rejection_carries_the_log(load):
    with pytest.raises(ProgramRejected) as caught:
        load("invalid")
    err = caught.value
    assert "invalid access to packet" in err.log and "processed" in err.log
    message = str(err)
    assert "unit invalid.xdp" in message and "unchecked_read" in message
    assert "invalid access to packet" in message
    assert isinstance(err, bpf.VerifierError) and err.errno == 13


def test_failed_load_leaves_no_pins_and_keeps_existing_ones(load, bpf_objects, bpffs_root):
    folder = bpffs_root.unit_path("shared")
    with load_object_program(bpf_objects / "pinned.bpf.o", Hook.XDP, folder):
        pass
    assert sorted(p.name for p in folder.iterdir()) == ["pinned_packets"]
    with pytest.raises(ProgramRejected):
        load_object_program(bpf_objects / "invalid.bpf.o", Hook.XDP, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["pinned_packets"]
    with pytest.raises(ProgramRejected):
        load("invalid")
    assert not bpffs_root.unit_path("invalid.xdp").exists()


def test_missing_object_file(load):
    with pytest.raises(ObjectNotFound, match=r"unit nothere\.xdp: BPF file .*nothere\.bpf\.o does not exist"):
        load("nothere")


def test_sha256_mismatch_shows_both_digests(load, bpf_objects):
    actual = hashlib.sha256((bpf_objects / "counter.bpf.o").read_bytes()).hexdigest()
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatch) as caught:
        load("counter", sha256=wrong)
    assert wrong in str(caught.value) and actual in str(caught.value)
    assert "unit counter.xdp" in str(caught.value)


def test_matching_sha256_loads(load, bpf_objects):
    actual = hashlib.sha256((bpf_objects / "counter.bpf.o").read_bytes()).hexdigest()
    assert load("counter", sha256=actual.upper()).sha256 == actual


def test_missing_named_program_lists_the_programs(load):
    with pytest.raises(ProgramNotFound) as caught:
        load("mixed", name="nope")
    assert "'nope'" in str(caught.value)
    assert "xdp_pass" in str(caught.value) and "count_writes" in str(caught.value)
    assert caught.value.available == ("xdp_pass", "count_writes")


@pytest.mark.parametrize(
    ("obj", "hook", "name", "kind"),
    [
        ("mixed", Hook.XDP, "count_writes", "tracepoint"),
        ("tc_actions", Hook.XDP, None, "sched_cls"),
        ("counter", Hook.TC_INGRESS, None, "xdp"),
    ],
)
def test_program_of_the_wrong_type_for_the_hook(load, bpffs_root, obj, hook, name, kind):
    with pytest.raises(WrongProgramType, match=f"a {kind} program, which cannot run on the {hook.value} hook"):
        load(obj, hook, name)
    assert not bpffs_root.unit_path(f"{obj}.{hook.value}").exists()


def test_object_without_a_program_for_the_hook_needs_a_name(load):
    with pytest.raises(ProgramNotFound, match="holds 0 programs for the tc-ingress hook"):
        load("mixed", Hook.TC_INGRESS)
