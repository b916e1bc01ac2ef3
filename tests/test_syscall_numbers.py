import pytest

from bpfunits.sys.libc import UnknownArchitecture, syscall_number


def test_bpf_has_its_number_on_each_architecture_we_build_for():
    assert syscall_number("bpf", "x86_64") == 321
    assert syscall_number("bpf", "aarch64") == 280


def test_an_unknown_architecture_is_named():
    with pytest.raises(UnknownArchitecture, match="bpf.*on riscv64"):
        syscall_number("bpf", "riscv64")
