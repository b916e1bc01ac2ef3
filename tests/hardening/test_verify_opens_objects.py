"""Issue 11 #11: `verify` opens each unit's object, without root and without the kernel, and reports
what would fail at the line of the key to fix; `verify --load` runs the kernel's verifier too. A
missing file, a garbage file and Name=no_such_prog passed as valid."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfunits.cli import main
from tests.hardening.test_malformed_object import CRASHERS
from tests.unitfiles import write

BPFUNITS = str(Path(sys.executable).with_name("bpfunits"))
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def unit(obj: Path | str, *extra: str, hook: str = "xdp") -> str:
    return "\n".join(["[Program]", f"Object={obj}", *extra, "[Attach]", f"Hook={hook}", "Interfaces=veth0", ""])


def verify(capsys, folder: Path, *args: str) -> tuple[int, list[str]]:
    code = main(["verify", "--units-dir", str(folder), "--interfaces", "veth0", *args])
    return code, capsys.readouterr().out.replace(f"{folder}/", "").splitlines()


def test_verify_opens_objects_and_reports_each_at_its_key(tmp_path, capsys, bpf_objects):
    counter = bpf_objects / "counter.bpf.o"
    (tmp_path / "garbage.bpf.o").write_text("not an object\n")
    write(tmp_path, "good.unit", unit(counter, f"SHA256={hashlib.sha256(counter.read_bytes()).hexdigest()}"))
    write(tmp_path, "missing.unit", unit(tmp_path / "missing.bpf.o"))
    write(tmp_path, "garbage.unit", unit("garbage.bpf.o"))
    write(tmp_path, "crasher.unit", unit(CRASHERS[0]))
    write(tmp_path, "noname.unit", unit(counter, "Name=no_such_prog"))
    write(tmp_path, "digest.unit", unit(counter, "SHA256=" + "0" * 64))
    write(tmp_path, "kind.unit", unit(bpf_objects / "wrongkind.bpf.o", "Name=l3af_tc"))
    write(tmp_path, "tc.unit", unit(counter, hook="tc-egress"))
    code, out = verify(capsys, tmp_path)
    assert code == 1
    assert out == [
        f"crasher.unit:2: error: unit crasher: object {CRASHERS[0]} is malformed (libbpf crashed on it (SIGSEGV, in a worker process))",
        f"digest.unit:3: error: unit digest: SHA256 of {counter} does not match: expected {'0' * 64}, file has "
        f"{hashlib.sha256(counter.read_bytes()).hexdigest()}",
        "garbage.unit:2: error: unit garbage: object garbage.bpf.o is malformed (libbpf: BPF object format invalid)",
        "libbpf: elf: 'garbage' is not a proper ELF object",
        f"kind.unit:3: error: unit kind: program 'l3af_tc' in {bpf_objects}/wrongkind.bpf.o is in section "
        "'tc-ingress', a tc program, which cannot run on the xdp hook",
        "missing.unit:2: error: unit missing: BPF file missing.bpf.o does not exist",
        f"noname.unit:3: error: unit noname: {counter} has no program 'no_such_prog'; its programs: count_packets (SEC 'xdp')",
        f"tc.unit:2: error: unit tc: program 'count_packets' in {counter} is in section 'xdp', a xdp program, "
        "which cannot run on the tc-egress hook",
        "1 units valid, 7 errors, 0 warnings",
    ]


def test_verify_opens_objects_and_counts_their_maps(tmp_path, capsys, bpf_objects):
    write(tmp_path, "many.unit", unit(bpf_objects / "manymaps.bpf.o"))
    code, out = verify(capsys, tmp_path)
    assert code == 0
    assert out == [
        f"many.unit:2: warning: unit many: {bpf_objects}/manymaps.bpf.o defines 63 maps, and a chain holds at most "
        "62 of its units' (64 per program, less bpfunits' own 2): it fits only if the program uses fewer",
        "1 units valid, 0 errors, 1 warnings",
    ]


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A folder that user nobody may read (pytest's tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="bpfunits-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.mark.root  # to become nobody
def test_verify_opens_objects_without_root_and_without_the_kernel(public_tmp, tmp_path, bpf_objects):
    units = public_tmp / "units"
    write(units, "good.unit", unit(bpf_objects / "counter.bpf.o"))
    write(units, "noname.unit", unit(bpf_objects / "counter.bpf.o", "Name=nope"))
    write(units, "crasher.unit", unit(CRASHERS[0]))
    trace = tmp_path / "strace.out"
    run = subprocess.run(["strace", "-f", "-qq", "-e", "trace=bpf", "-o", str(trace), *NOBODY, BPFUNITS, "verify",
                          "--units-dir", str(units), "--interfaces", "veth0"], capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "1 units valid, 2 errors, 0 warnings"
    assert "bpf(" not in trace.read_text()


@pytest.mark.kernel
def test_verify_load_runs_the_kernels_verifier_and_pins_nothing(tmp_path, capsys, bpf_objects):
    write(tmp_path, "invalid.unit", unit(bpf_objects / "invalid.bpf.o"))
    assert verify(capsys, tmp_path) == (0, ["1 units valid, 0 errors, 0 warnings"])
    code, out = verify(capsys, tmp_path, "--load")
    assert code == 1
    assert out[0].startswith("invalid.unit:2: error: unit invalid: BPF_PROG_LOAD: Permission denied")
    assert "invalid access to packet" in "\n".join(out)
    assert out[-1] == "0 units valid, 1 errors, 0 warnings"
    assert not Path("/sys/fs/bpf/invalid_state").exists()


@pytest.mark.root  # to become nobody
def test_verify_load_needs_root(public_tmp, bpf_objects):
    units = public_tmp / "units"
    write(units, "good.unit", unit(bpf_objects / "counter.bpf.o"))
    run = subprocess.run([*NOBODY, BPFUNITS, "verify", "--load", "--units-dir", str(units)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "verify --load runs the kernel's verifier, which needs root" in run.stderr
