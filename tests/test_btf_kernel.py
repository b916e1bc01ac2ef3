"""Finding a kernel function's BTF type id (what an fentry or fexit program is loaded against) in
a small BTF blob written here, as /sys/kernel/btf/vmlinux holds it: no kernel, no root."""

from __future__ import annotations

import struct

import pytest

from bpfunits.btf import kernel
from bpfunits.btf.kernel import NoKernelBtf, NoKernelFunction, func_ids, kernel_func_id
from bpfunits.btf.types import BtfError
from bpfunits.hooks import probe

INT, STRUCT, ENUM, FUNC, FUNC_PROTO, DECL_TAG = 1, 4, 6, 12, 13, 17


def btf_blob(types: list[tuple[str, int, int, int, bytes]]) -> bytes:
    """A BTF blob of (name, kind, vlen, size or type, the bytes after the header) types."""
    strings, data = bytearray(b"\0"), bytearray()
    for name, kind, vlen, size_or_type, extra in types:
        name_off = 0
        if name:
            name_off = len(strings)
            strings += name.encode() + b"\0"
        data += struct.pack("<III", name_off, kind << 24 | vlen, size_or_type) + extra
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(data), len(data), len(strings))
    return header + bytes(data) + bytes(strings)


TYPES = [
    ("int", INT, 0, 4, struct.pack("<I", 1 << 24 | 32)),  # 1
    ("", FUNC_PROTO, 2, 1, struct.pack("<IIII", 0, 1, 0, 1)),  # 2: int (int, int)
    ("first", FUNC, 1, 2, b""),  # 3
    ("pair", STRUCT, 2, 8, struct.pack("<IIIIII", 0, 1, 0, 0, 1, 32)),  # 4: members of every kind are skipped
    ("colour", ENUM, 2, 4, struct.pack("<IiIi", 0, 0, 0, 1)),  # 5
    ("tag", DECL_TAG, 0, 3, struct.pack("<i", -1)),  # 6
    ("second", FUNC, 0, 2, b""),  # 7
]


def test_every_function_of_a_blob_has_its_type_id():
    assert func_ids(btf_blob(TYPES)) == {"first": 3, "second": 7}


def test_a_kernel_function_is_found_in_the_kernels_btf(tmp_path):
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(btf_blob(TYPES))
    assert kernel_func_id("second", vmlinux) == 7


def test_a_function_the_kernels_btf_lacks_is_a_clear_error(tmp_path):
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(btf_blob(TYPES))
    with pytest.raises(NoKernelFunction) as caught:
        kernel_func_id("pair", vmlinux)  # a struct, not a function
    assert str(caught.value) == (f"no function pair in the kernel's BTF ({vmlinux}): it is not a kernel function, "
                                 "is inlined, or is a module's")


def test_a_kernel_without_btf_is_a_clear_error(tmp_path):
    with pytest.raises(NoKernelBtf) as caught:
        kernel_func_id("first", tmp_path / "vmlinux")
    assert str(caught.value) == (f"this kernel has no BTF of its own (no {tmp_path / 'vmlinux'}: built without "
                                 "CONFIG_DEBUG_INFO_BTF)")


@pytest.mark.parametrize("blob", [b"\x9f\xeb", b"not BTF at all, not BTF at all", btf_blob(TYPES)[:40]],
                         ids=["short", "no-magic", "truncated"])
def test_malformed_btf_is_an_error(blob):
    with pytest.raises(BtfError):
        func_ids(blob)


def test_the_tracing_probe_finds_a_kernel_without_btf_lacking(tmp_path, monkeypatch):
    """Before any bpf() call: no root needed, and the reason names the missing file."""
    monkeypatch.setattr(kernel, "VMLINUX", tmp_path / "vmlinux")
    assert probe._tracing() == (f"this kernel has no BTF of its own (no {tmp_path / 'vmlinux'}: built without "
                                "CONFIG_DEBUG_INFO_BTF)")
