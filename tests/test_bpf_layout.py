"""The bpf(2) structures (bpfunits/sys/bpfattr.py) against the kernel's UAPI: a field at the wrong
offset, or of the wrong size, would have the kernel read another field than the one set."""

import ctypes

import pytest

from bpfunits.sys import bpfattr

# (structure, field, offsetof, sizeof) in include/uapi/linux/bpf.h, printed by a C program
# compiled against it (libbpf's copy of the header as of libbpf commit f7081a6, July 2026):
# `offsetof(union bpf_attr, link_create.tcx.relative_fd)` and so on; for the infos,
# `offsetof(struct bpf_prog_info, map_ids)`. A dotted field is a member of a named member.
UAPI = [
    ("MapCreateAttr", "map_type", 0, 4),
    ("MapCreateAttr", "key_size", 4, 4),
    ("MapCreateAttr", "value_size", 8, 4),
    ("MapCreateAttr", "max_entries", 12, 4),
    ("MapCreateAttr", "map_flags", 16, 4),
    ("MapCreateAttr", "inner_map_fd", 20, 4),
    ("MapCreateAttr", "numa_node", 24, 4),
    ("MapCreateAttr", "map_name", 28, 16),
    ("MapElemAttr", "map_fd", 0, 4),
    ("MapElemAttr", "key", 8, 8),
    ("MapElemAttr", "value", 16, 8),
    ("MapElemAttr", "next_key", 16, 8),
    ("MapElemAttr", "flags", 24, 8),
    ("ProgLoadAttr", "prog_type", 0, 4),
    ("ProgLoadAttr", "insn_cnt", 4, 4),
    ("ProgLoadAttr", "insns", 8, 8),
    ("ProgLoadAttr", "license", 16, 8),
    ("ProgLoadAttr", "log_level", 24, 4),
    ("ProgLoadAttr", "log_size", 28, 4),
    ("ProgLoadAttr", "log_buf", 32, 8),
    ("ProgLoadAttr", "kern_version", 40, 4),
    ("ProgLoadAttr", "prog_flags", 44, 4),
    ("ProgLoadAttr", "prog_name", 48, 16),
    ("ProgLoadAttr", "prog_ifindex", 64, 4),
    ("ProgLoadAttr", "expected_attach_type", 68, 4),
    ("ProgLoadAttr", "prog_btf_fd", 72, 4),
    ("ProgLoadAttr", "func_info_rec_size", 76, 4),
    ("ProgLoadAttr", "func_info", 80, 8),
    ("ProgLoadAttr", "func_info_cnt", 88, 4),
    ("ProgLoadAttr", "line_info_rec_size", 92, 4),
    ("ProgLoadAttr", "line_info", 96, 8),
    ("ProgLoadAttr", "line_info_cnt", 104, 4),
    ("ProgLoadAttr", "attach_btf_id", 108, 4),
    ("ObjAttr", "pathname", 0, 8),
    ("ObjAttr", "bpf_fd", 8, 4),
    ("ObjAttr", "file_flags", 12, 4),
    ("ProgTestRunAttr", "prog_fd", 0, 4),
    ("ProgTestRunAttr", "retval", 4, 4),
    ("ProgTestRunAttr", "data_size_in", 8, 4),
    ("ProgTestRunAttr", "data_size_out", 12, 4),
    ("ProgTestRunAttr", "data_in", 16, 8),
    ("ProgTestRunAttr", "data_out", 24, 8),
    ("ProgTestRunAttr", "repeat", 32, 4),
    ("ProgTestRunAttr", "duration", 36, 4),
    ("GetIdAttr", "start_id", 0, 4),
    ("GetIdAttr", "prog_id", 0, 4),
    ("GetIdAttr", "map_id", 0, 4),
    ("GetIdAttr", "btf_id", 0, 4),
    ("GetIdAttr", "link_id", 0, 4),
    ("GetIdAttr", "next_id", 4, 4),
    ("GetIdAttr", "open_flags", 8, 4),
    ("InfoAttr", "bpf_fd", 0, 4),
    ("InfoAttr", "info_len", 4, 4),
    ("InfoAttr", "info", 8, 8),
    ("ProgQueryAttr", "target_fd", 0, 4),
    ("ProgQueryAttr", "target_ifindex", 0, 4),
    ("ProgQueryAttr", "attach_type", 4, 4),
    ("ProgQueryAttr", "query_flags", 8, 4),
    ("ProgQueryAttr", "attach_flags", 12, 4),
    ("ProgQueryAttr", "prog_ids", 16, 8),
    ("ProgQueryAttr", "count", 24, 4),
    ("ProgQueryAttr", "prog_attach_flags", 32, 8),
    ("ProgQueryAttr", "link_ids", 40, 8),
    ("ProgQueryAttr", "link_attach_flags", 48, 8),
    ("ProgQueryAttr", "revision", 56, 8),
    ("BtfLoadAttr", "btf", 0, 8),
    ("BtfLoadAttr", "btf_log_buf", 8, 8),
    ("BtfLoadAttr", "btf_size", 16, 4),
    ("BtfLoadAttr", "btf_log_size", 20, 4),
    ("BtfLoadAttr", "btf_log_level", 24, 4),
    ("LinkCreateAttr", "prog_fd", 0, 4),
    ("LinkCreateAttr", "target_fd", 4, 4),
    ("LinkCreateAttr", "target_ifindex", 4, 4),
    ("LinkCreateAttr", "attach_type", 8, 4),
    ("LinkCreateAttr", "flags", 12, 4),
    ("LinkCreateAttr", "target_btf_id", 16, 4),
    ("LinkCreateAttr", "tcx", 16, 16),
    ("LinkCreateAttr", "tcx.relative_fd", 16, 4),
    ("LinkCreateAttr", "tcx.relative_id", 16, 4),
    ("LinkCreateAttr", "tcx.expected_revision", 24, 8),
    ("LinkUpdateAttr", "link_fd", 0, 4),
    ("LinkUpdateAttr", "new_prog_fd", 4, 4),
    ("LinkUpdateAttr", "flags", 8, 4),
    ("LinkUpdateAttr", "old_prog_fd", 12, 4),
    ("LinkDetachAttr", "link_fd", 0, 4),
    ("ProgBindMapAttr", "prog_fd", 0, 4),
    ("ProgBindMapAttr", "map_fd", 4, 4),
    ("ProgBindMapAttr", "flags", 8, 4),
    ("BpfProgInfo", "type", 0, 4),
    ("BpfProgInfo", "id", 4, 4),
    ("BpfProgInfo", "tag", 8, 8),
    ("BpfProgInfo", "jited_prog_len", 16, 4),
    ("BpfProgInfo", "xlated_prog_len", 20, 4),
    ("BpfProgInfo", "jited_prog_insns", 24, 8),
    ("BpfProgInfo", "xlated_prog_insns", 32, 8),
    ("BpfProgInfo", "load_time", 40, 8),
    ("BpfProgInfo", "created_by_uid", 48, 4),
    ("BpfProgInfo", "nr_map_ids", 52, 4),
    ("BpfProgInfo", "map_ids", 56, 8),
    ("BpfProgInfo", "name", 64, 16),
    ("BpfProgInfo", "ifindex", 80, 4),
    ("BpfProgInfo", "gpl_compatible", 84, 4),
    ("BpfProgInfo", "netns_dev", 88, 8),
    ("BpfProgInfo", "netns_ino", 96, 8),
    ("BpfProgInfo", "nr_jited_ksyms", 104, 4),
    ("BpfProgInfo", "nr_jited_func_lens", 108, 4),
    ("BpfProgInfo", "jited_ksyms", 112, 8),
    ("BpfProgInfo", "jited_func_lens", 120, 8),
    ("BpfProgInfo", "btf_id", 128, 4),
    ("BpfProgInfo", "func_info_rec_size", 132, 4),
    ("BpfProgInfo", "func_info", 136, 8),
    ("BpfProgInfo", "nr_func_info", 144, 4),
    ("BpfProgInfo", "nr_line_info", 148, 4),
    ("BpfProgInfo", "line_info", 152, 8),
    ("BpfProgInfo", "jited_line_info", 160, 8),
    ("BpfProgInfo", "nr_jited_line_info", 168, 4),
    ("BpfProgInfo", "line_info_rec_size", 172, 4),
    ("BpfProgInfo", "jited_line_info_rec_size", 176, 4),
    ("BpfProgInfo", "nr_prog_tags", 180, 4),
    ("BpfProgInfo", "prog_tags", 184, 8),
    ("BpfProgInfo", "run_time_ns", 192, 8),
    ("BpfProgInfo", "run_cnt", 200, 8),
    ("EnableStatsAttr", "type", 0, 4),
    ("RawTracepointOpenAttr", "name", 0, 8),
    ("RawTracepointOpenAttr", "prog_fd", 8, 4),
    ("BpfMapInfo", "type", 0, 4),
    ("BpfMapInfo", "id", 4, 4),
    ("BpfMapInfo", "key_size", 8, 4),
    ("BpfMapInfo", "value_size", 12, 4),
    ("BpfMapInfo", "max_entries", 16, 4),
    ("BpfMapInfo", "map_flags", 20, 4),
    ("BpfMapInfo", "name", 24, 16),
    ("BpfMapInfo", "ifindex", 40, 4),
    ("BpfMapInfo", "btf_vmlinux_value_type_id", 44, 4),
    ("BpfMapInfo", "netns_dev", 48, 8),
    ("BpfMapInfo", "netns_ino", 56, 8),
    ("BpfMapInfo", "btf_id", 64, 4),
    ("BpfMapInfo", "btf_key_type_id", 68, 4),
    ("BpfMapInfo", "btf_value_type_id", 72, 4),
    ("BpfLinkInfo", "type", 0, 4),
    ("BpfLinkInfo", "id", 4, 4),
    ("BpfLinkInfo", "prog_id", 8, 4),
    ("BpfLinkInfo", "xdp.ifindex", 16, 4),
    ("BpfLinkInfo", "tcx.ifindex", 16, 4),
    ("BpfLinkInfo", "tcx.attach_type", 20, 4),
    ("BpfLinkInfo", "netkit.ifindex", 16, 4),
    ("BpfLinkInfo", "netkit.attach_type", 20, 4),
]

STRUCTURES = sorted({name for name, *_ in UAPI})


def _field(cls: type, name: str) -> tuple[type, int, int]:
    """The type, offset and size of field `name` of `cls`, also one of an anonymous member."""
    for member, kind, *_ in cls._fields_:
        descriptor = getattr(cls, member)
        if member == name:
            return kind, descriptor.offset, descriptor.size
        if member in getattr(cls, "_anonymous_", ()) and any(n == name for n, *_ in kind._fields_):
            inner, offset, size = _field(kind, name)
            return inner, descriptor.offset + offset, size
    raise AttributeError(f"{cls.__name__} has no field {name}")


def _offset_and_size(cls: type, path: str) -> tuple[int, int]:
    offset = 0
    for name in path.split("."):
        cls, at, size = _field(cls, name)
        offset += at
    return offset, size


@pytest.mark.parametrize(("structure", "field", "offset", "size"), UAPI, ids=[f"{s}.{f}" for s, f, *_ in UAPI])
def test_each_field_is_where_the_kernel_reads_it(structure, field, offset, size):
    assert _offset_and_size(getattr(bpfattr, structure), field) == (offset, size)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_every_field_is_checked(structure):
    cls = getattr(bpfattr, structure)
    anonymous = getattr(cls, "_anonymous_", ())
    named = {n for n, *_ in cls._fields_ if n not in anonymous and n != "_zeros"}
    named |= {n for m, kind, *_ in cls._fields_ if m in anonymous for n, *_ in kind._fields_ if not n.startswith("_")}
    assert named <= {f.split(".")[0] for s, f, *_ in UAPI if s == structure}


@pytest.mark.parametrize("structure", [s for s in STRUCTURES if s.endswith("Attr")])
def test_every_command_is_the_size_the_kernel_is_given_zeros_after_its_fields(structure):
    # bpf() is given ATTR_SIZE bytes from the attributes' own address: a shorter structure
    # would let the kernel read (and write back) past it.
    cls = getattr(bpfattr, structure)
    assert ctypes.sizeof(cls) == bpfattr.ATTR_SIZE
    last = max(f.offset + f.size for f in (getattr(cls, n) for n, *_ in cls._fields_ if n != "_zeros"))
    assert cls._zeros.offset <= last + 8  # only alignment between the last field and the zeros
    assert bytes(cls())[last:] == bytes(bpfattr.ATTR_SIZE - last)


def test_a_misspelt_field_is_refused():
    with pytest.raises(TypeError, match="ProgLoadAttr has no field prog_typ"):
        bpfattr.ProgLoadAttr(prog_typ=6)


def test_a_pointer_field_holds_its_buffer():
    attr = bpfattr.ObjAttr(pathname=b"/sys/fs/bpf/x\0", bpf_fd=3)
    assert ctypes.string_at(attr.pathname) == b"/sys/fs/bpf/x"
    assert bpfattr.ObjAttr(pathname=None).pathname == 0
