"""Source= units: C in bcc's dialect, compiled and loaded by bcc."""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import time
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.load import mappins
from bpfunits.sys import bpf
from bpfunits.load.load import LoadError, ProgramNotFound, ProgramRejected
from bpfunits.reconcile.progcache import load_unit_program
from bpfunits.units.model import Program, Unit

pytestmark = pytest.mark.kernel

XDP_DROP, XDP_PASS = 1, 2
FRAME = bytes(64)
ZERO = bytes(4)


def source_unit(source: Path, hook: Hook = Hook.XDP, **program) -> Unit:
    return Unit(
        name="bcc-test",
        path=source.with_suffix(".unit"),
        hook=hook,
        program=Program(source=source, **program),
        interfaces=("bu-none",),
        proceed_on=hook.default_proceed_on,
    )


@pytest.fixture
def load(bpffs_root):
    loaded = []

    def _load(source: Path, hook: Hook = Hook.XDP, **program):
        prog = load_unit_program(source_unit(source, hook, **program), bpffs_root)
        loaded.append(prog)
        return prog

    yield _load
    for prog in loaded:
        prog.close()


@pytest.mark.parametrize(
    ("defines", "verdict"), [((), XDP_PASS), ((("VERDICT", "XDP_DROP"),), XDP_DROP)]
)
def test_define_changes_the_program(load, bpf_objects, defines, verdict):
    prog = load(bpf_objects / "bcc_counter.c", defines=defines)
    assert (prog.name, prog.prog_type) == ("bcc_count", bpf.ProgType.XDP)
    assert bpf.prog_test_run(prog.fd, FRAME, repeat=3).retval == verdict
    packets = prog.maps["packets"]
    assert (packets.type, packets.key_size, packets.value_size) == (bpf.MapType.ARRAY, 4, 8)
    assert struct.unpack("<Q", bpf.map_lookup(packets.fd, ZERO, 8))[0] == 3


def test_insns_hold_map_fds_and_load_again(load, bpf_objects):
    prog = load(bpf_objects / "bcc_counter.c", name="bcc_count")
    assert bpf.prog_info(prog.fd).tag == prog.tag
    map_fds = [
        struct.unpack_from("<i", prog.insns, i + 4)[0]
        for i in range(0, len(prog.insns), 8)
        if prog.insns[i] == 0x18 and prog.insns[i + 1] >> 4 == 1
    ]
    assert map_fds == [prog.maps["packets"].fd]
    again = bpf.prog_load(bpf.ProgType.XDP, prog.insns)
    try:
        assert bpf.prog_test_run(again, FRAME).retval == XDP_PASS
    finally:
        os.close(again)


def test_tc_hook_loads_a_sched_cls_program(load, tmp_path):
    source = tmp_path / "tc.c"
    source.write_text("int classify(struct __sk_buff *skb) { return 2; /* TC_ACT_SHOT */ }\n")
    prog = load(source, Hook.TC_INGRESS)
    assert prog.prog_type == bpf.ProgType.SCHED_CLS
    assert bpf.prog_test_run(prog.fd, FRAME).retval == 2


def test_compile_error_shows_the_compiler_message(load, tmp_path):
    source = tmp_path / "broken.c"
    source.write_text("int broken(struct xdp_md *ctx) { return undeclared_thing; }\n")
    with pytest.raises(LoadError, match="(?s)unit bcc-test: bcc cannot compile .*undeclared_thing"):
        load(source)


def test_verifier_rejection_carries_the_log(load, tmp_path):
    source = tmp_path / "invalid.c"
    source.write_text(
        "int unchecked(struct xdp_md *ctx) {\n"
        "  unsigned char *data = (void *)(long)ctx->data;\n"
        "  return data[0];\n"
        "}\n"
    )
    with pytest.raises(ProgramRejected) as caught:
        load(source)
    assert "invalid access to packet" in caught.value.log
    assert "unit bcc-test" in str(caught.value) and "invalid access to packet" in str(caught.value)


def test_missing_function_lists_the_functions(load, bpf_objects):
    with pytest.raises(ProgramNotFound, match="no function 'nope'; its functions: bcc_count"):
        load(bpf_objects / "bcc_counter.c", name="nope")


def test_missing_source_file(load, tmp_path):
    with pytest.raises(LoadError, match="does not exist"):
        load(tmp_path / "absent.c")


def test_unit_maps_persist_across_loads(bpffs_root, bpf_objects):
    unit = source_unit(bpf_objects / "bcc_counter.c")
    with load_unit_program(unit, bpffs_root) as first:
        for _ in range(3):
            assert bpf.prog_test_run(first.fd, b"\0" * 64).retval == 2
        mappins.commit(bpffs_root, unit.name, first.maps.values())  # as apply does once a chain uses it
        first_id = first.maps["packets"].id
    with load_unit_program(unit, bpffs_root) as second:
        assert second.maps["packets"].id == first_id, "the pinned map stands in for bcc's new one"
        assert second.maps["packets"].pinned_path == str(bpffs_root.unit_path(unit.name) / "packets")
        bpf.prog_test_run(second.fd, b"\0" * 64)
        assert struct.unpack("<Q", bpf.map_lookup(second.maps["packets"].fd, struct.pack("<I", 0), 8))[0] == 4
        # The instructions the linker takes reference the persisted map too.
        again = bpf.prog_load(bpf.ProgType.XDP, second.insns)
        try:
            assert first_id in bpf.prog_info(again).map_ids
        finally:
            os.close(again)


def test_close_releases_the_program_and_every_fd(bpffs_root, bpf_objects):
    unit = source_unit(bpf_objects / "bcc_counter.c")
    fds_before = set(os.listdir("/proc/self/fd"))
    prog = load_unit_program(unit, bpffs_root)
    prog.close()
    assert set(os.listdir("/proc/self/fd")) == fds_before, "the program's and its maps' fds are closed"


def test_compiling_leaves_the_process_stderr_to_other_threads(load, tmp_path):
    """clang's messages are captured without redirecting this process's fd 2, where other
    threads (the daemon's watchers) log meanwhile."""
    source = tmp_path / "broken.c"
    source.write_text("int broken(struct xdp_md *ctx) { return undeclared_thing; }\n")
    log = tmp_path / "stderr"
    saved = os.dup(2)
    stop = threading.Event()
    written: list[str] = []

    def other_thread() -> None:
        while not stop.is_set():
            line = f"line {len(written)}\n"
            os.write(2, line.encode())
            written.append(line)
            time.sleep(0.001)

    with log.open("w") as out:
        os.dup2(out.fileno(), 2)
        thread = threading.Thread(target=other_thread)
        thread.start()
        try:
            with pytest.raises(LoadError, match="undeclared_thing") as caught:
                load(source)
        finally:
            stop.set()
            thread.join()
            os.dup2(saved, 2)
            os.close(saved)
    assert log.read_text() == "".join(written), "every line the other thread wrote reached fd 2"
    assert "line " not in str(caught.value)


SIZED = """#include <uapi/linux/bpf.h>
#ifndef SLOTS
#define SLOTS 1
#endif
BPF_ARRAY(slots, u64, SLOTS);
int sized(struct xdp_md *ctx) { slots.increment(0); return XDP_PASS; }
"""


def test_a_define_that_only_resizes_a_map_changes_the_programs_identity(load, tmp_path):
    """Issue 11: the same code with a map of another size has the same tag and source digest;
    planned as unchanged, the chain kept the old map. The defines are part of its identity."""
    source = tmp_path / "sized.c"
    source.write_text(SIZED)
    four, eight = load(source, defines=(("SLOTS", "4"),)), load(source, defines=(("SLOTS", "8"),))
    assert (four.maps["slots"].max_entries, eight.maps["slots"].max_entries) == (4, 8)
    assert four.tag == eight.tag, "the code is the same: the tag cannot tell them apart"
    assert four.sha256 != eight.sha256
    assert load(source).sha256 == hashlib.sha256(source.read_bytes()).hexdigest(), "no defines: the file's digest"
