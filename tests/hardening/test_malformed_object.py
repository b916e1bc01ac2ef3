"""Issue 11 #2: a malformed object must never take the process down. The crashers in crashers/ are
copies of bpf/examples/filter.bpf.o with one byte of BTF changed (found by the seeded mutator of
objmutate.py) on which libbpf 1.1's bpf_object__open_mem segfaults; libbpf now runs in a worker, and
each is an error of its unit only."""

from __future__ import annotations

import ctypes
import faulthandler
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bpfunits.hooks import Hook
from bpfunits.load.load import ObjectMalformed, load_object_program
from tests.unitfiles import write

CRASHERS = sorted((Path(__file__).parent / "crashers").glob("*.bpf.o"))
BPFUNITS = str(Path(sys.executable).with_name("bpfunits"))


def _open_in_this_process(data: bytes) -> None:
    lib = ctypes.CDLL("libbpf.so.1")
    lib.bpf_object__open_mem.restype = ctypes.c_void_p
    lib.bpf_object__open_mem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    lib.bpf_object__open_mem(ctypes.create_string_buffer(data, len(data)), len(data), None)


@pytest.mark.parametrize("crasher", CRASHERS, ids=lambda p: p.name)
def test_malformed_object_crashers_do_crash_libbpf(crasher):
    """What the loader must survive: each kept crasher kills whoever opens it with libbpf."""
    pid = os.fork()
    if pid == 0:
        faulthandler.disable()
        os.close(2)  # libbpf's warnings
        _open_in_this_process(crasher.read_bytes())
        os._exit(0)
    status = os.waitpid(pid, 0)[1]
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV


@pytest.mark.parametrize("crasher", CRASHERS, ids=lambda p: p.name)
def test_malformed_object_is_an_error_not_a_crash(crasher):
    with pytest.raises(ObjectMalformed) as caught:
        load_object_program(crasher, Hook.XDP, None, label="unit f")
    assert str(caught.value) == f"unit f: object {crasher} is malformed (libbpf crashed on it (SIGSEGV, in a worker process))"


def test_malformed_object_garbage_and_truncation(tmp_path, bpf_objects):
    garbage = write(tmp_path, "garbage.bpf.o", "not an ELF file\n")
    truncated = tmp_path / "truncated.bpf.o"
    truncated.write_bytes((bpf_objects / "examples" / "filter.bpf.o").read_bytes()[:3000])
    for path in (garbage, truncated):
        with pytest.raises(ObjectMalformed, match=rf"^unit g: object {path} is malformed \(libbpf: "):
            load_object_program(path, Hook.XDP, None, label="unit g")


@pytest.mark.kernel
def test_malformed_object_plan_reports_its_unit_and_plans_the_rest(tmp_path, veth_pair, bpffs_root, bpf_objects):
    """`plan` exited 139 (SIGSEGV) here, and the daemon crash-looped."""
    units = tmp_path / "units"
    for name, obj in (("good", bpf_objects / "examples" / "counter.bpf.o"), ("bad", CRASHERS[0])):
        write(units, f"{name}.unit", f"[Program]\nObject={obj}\n[Attach]\nHook=xdp\nInterfaces={veth_pair.if_a}\n")
    write(units, "other.unit", f"[Program]\nObject={bpf_objects / 'tc_actions.bpf.o'}\n"
          f"[Attach]\nHook=tc-ingress\nInterfaces={veth_pair.if_a}\n")
    run = subprocess.run([BPFUNITS, "plan", "--json", "--netns", veth_pair.ns_a, "--units-dir", str(units),
                          "--bpffs-root", str(bpffs_root.path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    hooks = {h["hook"]: h for h in json.loads(run.stdout)["hooks"]}
    assert f"unit bad: object {CRASHERS[0]} is malformed" in " ".join(hooks["xdp"]["errors"])
    assert hooks["tc-ingress"]["errors"] == []
