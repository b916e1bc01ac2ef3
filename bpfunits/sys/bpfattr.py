"""The bpf(2) command attributes and object infos as ctypes structures.

Each structure mirrors one member of `union bpf_attr` (or `struct bpf_*_info`) in
include/uapi/linux/bpf.h, field names as there, up to the last field bpfunits uses: the kernel
reads zeros for the rest. tests/test_bpf_layout.py checks every offset against the header's.
"""

from __future__ import annotations

import ctypes
import functools
from typing import TYPE_CHECKING, ClassVar, cast

u32 = ctypes.c_uint32
u64 = ctypes.c_uint64  # also every __aligned_u64 pointer: 64 bits on every architecture
OBJ_NAME = ctypes.c_char * 16  # BPF_OBJ_NAME_LEN
TAG = ctypes.c_uint8 * 8  # BPF_TAG_SIZE

# What bpf() is given for every command: the command's structure, zeros after. More than any
# structure below; a kernel whose union bpf_attr is smaller checks that the bytes past it are
# zero (120 bytes around 5.10), a larger one (168 in today's header) reads zeros past it.
ATTR_SIZE = 160


class _Target(ctypes.Union):
    _fields_ = [("target_fd", u32), ("target_ifindex", u32)]


class _Relative(ctypes.Union):
    _fields_ = [("relative_fd", u32), ("relative_id", u32)]


_CField = type(_Target.target_fd)  # what ctypes makes of each field, anonymous members' too


if TYPE_CHECKING:
    from _ctypes import _PyCStructType as _StructType
else:
    _StructType = type(ctypes.Structure)  # not exported under a name


class _Padded(_StructType):
    """Makes each structure with fields ATTR_SIZE bytes long: what bpf() is given is then the
    attributes themselves, zeros after the last field (no padded copy made per call, and what
    the kernel writes back lands in them)."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, object]):  # noqa: N804
        fields = namespace.get("_fields_")
        if isinstance(fields, list):
            layout = {k: v for k, v in namespace.items() if k in ("_fields_", "_anonymous_", "_pack_")}
            measured = cast(type[ctypes.Structure], type(f"_{name}", (ctypes.Structure,), layout))
            room = ATTR_SIZE - ctypes.sizeof(measured)
            if room < 0:
                raise TypeError(f"{name} is longer than ATTR_SIZE")
            namespace = {**namespace, "_fields_": [*fields, ("_zeros", ctypes.c_uint8 * room)]}
        return super().__new__(mcs, name, bases, namespace)


class Attr(ctypes.Structure, metaclass=_Padded):
    """A command's attributes, ATTR_SIZE bytes. Fields named in `_pointers_` take bytes, a ctypes
    array or structure (or None for NULL): the attributes hold its address and keep it alive."""

    _pointers_: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **fields: object) -> None:
        if not fields.keys() <= _field_names(type(self)):  # ctypes would store others as plain attributes
            unknown = sorted(fields.keys() - _field_names(type(self)))
            raise TypeError(f"{type(self).__name__} has no field {', '.join(unknown)}")
        keep = []
        for name in self._pointers_ and set(self._pointers_) & fields.keys():
            data = fields[name]
            if isinstance(data, bytes):
                data = ctypes.create_string_buffer(data, len(data))
            if isinstance(data, ctypes.Array | ctypes.Structure):
                keep.append(data)
                fields[name] = ctypes.addressof(data)
            elif data is None:
                fields[name] = 0
        super().__init__(**fields)
        self._keep = keep


@functools.cache
def _field_names(cls: type[ctypes.Structure]) -> frozenset[str]:
    """A structure's field names, its anonymous members' included (asked per bpf(2) call)."""
    return frozenset(name for name in dir(cls) if isinstance(getattr(cls, name), _CField))


class MapCreateAttr(Attr):
    """BPF_MAP_CREATE."""

    _fields_ = [
        ("map_type", u32),
        ("key_size", u32),
        ("value_size", u32),
        ("max_entries", u32),
        ("map_flags", u32),
        ("inner_map_fd", u32),
        ("numa_node", u32),
        ("map_name", OBJ_NAME),
    ]


class _ValueOrNextKey(ctypes.Union):
    _fields_ = [("value", u64), ("next_key", u64)]


class MapElemAttr(Attr):
    """BPF_MAP_*_ELEM, BPF_MAP_GET_NEXT_KEY and BPF_MAP_FREEZE."""

    _anonymous_ = ("_value",)
    _fields_ = [("map_fd", u32), ("key", u64), ("_value", _ValueOrNextKey), ("flags", u64)]
    _pointers_ = ("key", "value", "next_key")


class ProgLoadAttr(Attr):
    """BPF_PROG_LOAD."""

    _fields_ = [
        ("prog_type", u32),
        ("insn_cnt", u32),
        ("insns", u64),
        ("license", u64),
        ("log_level", u32),
        ("log_size", u32),
        ("log_buf", u64),
        ("kern_version", u32),
        ("prog_flags", u32),
        ("prog_name", OBJ_NAME),
        ("prog_ifindex", u32),
        ("expected_attach_type", u32),
        ("prog_btf_fd", u32),
        ("func_info_rec_size", u32),
        ("func_info", u64),
        ("func_info_cnt", u32),
        ("line_info_rec_size", u32),
        ("line_info", u64),
        ("line_info_cnt", u32),
        ("attach_btf_id", u32),  # fentry, fexit: the kernel function's id in vmlinux BTF
    ]
    _pointers_ = ("insns", "license", "log_buf", "func_info")


class ObjAttr(Attr):
    """BPF_OBJ_PIN and BPF_OBJ_GET."""

    _fields_ = [("pathname", u64), ("bpf_fd", u32), ("file_flags", u32)]
    _pointers_ = ("pathname",)


class ProgTestRunAttr(Attr):
    """BPF_PROG_TEST_RUN (the union's `test` member)."""

    _fields_ = [
        ("prog_fd", u32),
        ("retval", u32),
        ("data_size_in", u32),
        ("data_size_out", u32),
        ("data_in", u64),
        ("data_out", u64),
        ("repeat", u32),
        ("duration", u32),
    ]
    _pointers_ = ("data_in", "data_out")


class _StartId(ctypes.Union):
    _fields_ = [("start_id", u32), ("prog_id", u32), ("map_id", u32), ("btf_id", u32), ("link_id", u32)]


class GetIdAttr(Attr):
    """BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID."""

    _anonymous_ = ("_id",)
    _fields_ = [("_id", _StartId), ("next_id", u32), ("open_flags", u32)]


class InfoAttr(Attr):
    """BPF_OBJ_GET_INFO_BY_FD (the union's `info` member)."""

    _fields_ = [("bpf_fd", u32), ("info_len", u32), ("info", u64)]
    _pointers_ = ("info",)


class RawTracepointOpenAttr(Attr):
    """BPF_RAW_TRACEPOINT_OPEN (the union's `raw_tracepoint` member)."""

    _fields_ = [("name", u64), ("prog_fd", u32)]
    _pointers_ = ("name",)


class ProgQueryAttr(Attr):
    """BPF_PROG_QUERY (the union's `query` member; `count` is also called prog_cnt)."""

    _anonymous_ = ("_target",)
    _fields_ = [
        ("_target", _Target),
        ("attach_type", u32),
        ("query_flags", u32),
        ("attach_flags", u32),
        ("prog_ids", u64),
        ("count", u32),
        ("prog_attach_flags", u64),
        ("link_ids", u64),
        ("link_attach_flags", u64),
        ("revision", u64),
    ]
    _pointers_ = ("prog_ids", "prog_attach_flags", "link_ids", "link_attach_flags")


class BtfLoadAttr(Attr):
    """BPF_BTF_LOAD."""

    _fields_ = [
        ("btf", u64),
        ("btf_log_buf", u64),
        ("btf_size", u32),
        ("btf_log_size", u32),
        ("btf_log_level", u32),
    ]
    _pointers_ = ("btf", "btf_log_buf")


class TcxLinkCreate(ctypes.Structure):
    """The `tcx` member of link_create's type union."""

    _anonymous_ = ("_relative",)
    _fields_ = [("_relative", _Relative), ("expected_revision", u64)]


class _LinkCreateByType(ctypes.Union):
    """What follows `flags`, by link type; bpfunits makes xdp links (nothing) and tcx links."""

    _fields_ = [("target_btf_id", u32), ("tcx", TcxLinkCreate)]


class LinkCreateAttr(Attr):
    """BPF_LINK_CREATE (the union's `link_create` member)."""

    _anonymous_ = ("_target", "_by_type")
    _fields_ = [
        ("prog_fd", u32),
        ("_target", _Target),
        ("attach_type", u32),
        ("flags", u32),
        ("_by_type", _LinkCreateByType),
    ]


class LinkUpdateAttr(Attr):
    """BPF_LINK_UPDATE (the union's `link_update` member)."""

    _fields_ = [("link_fd", u32), ("new_prog_fd", u32), ("flags", u32), ("old_prog_fd", u32)]


class EnableStatsAttr(Attr):
    """BPF_ENABLE_STATS (the union's `enable_stats` member)."""

    _fields_ = [("type", u32)]


class LinkDetachAttr(Attr):
    """BPF_LINK_DETACH (the union's `link_detach` member)."""

    _fields_ = [("link_fd", u32)]


class ProgBindMapAttr(Attr):
    """BPF_PROG_BIND_MAP (the union's `prog_bind_map` member)."""

    _fields_ = [("prog_fd", u32), ("map_fd", u32), ("flags", u32)]


# --- object infos (BPF_OBJ_GET_INFO_BY_FD) ---------------------------------------------------


class BpfProgInfo(ctypes.Structure):
    """struct bpf_prog_info, up to `run_cnt` (older kernels fill less and leave the rest zero)."""

    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("tag", TAG),
        ("jited_prog_len", u32),
        ("xlated_prog_len", u32),
        ("jited_prog_insns", u64),
        ("xlated_prog_insns", u64),
        ("load_time", u64),
        ("created_by_uid", u32),
        ("nr_map_ids", u32),
        ("map_ids", u64),
        ("name", OBJ_NAME),
        ("ifindex", u32),
        ("gpl_compatible", u32),  # a one-bit bitfield
        ("netns_dev", u64),
        ("netns_ino", u64),
        ("nr_jited_ksyms", u32),
        ("nr_jited_func_lens", u32),
        ("jited_ksyms", u64),
        ("jited_func_lens", u64),
        ("btf_id", u32),
        ("func_info_rec_size", u32),
        ("func_info", u64),
        ("nr_func_info", u32),
        ("nr_line_info", u32),
        ("line_info", u64),
        ("jited_line_info", u64),
        ("nr_jited_line_info", u32),
        ("line_info_rec_size", u32),
        ("jited_line_info_rec_size", u32),
        ("nr_prog_tags", u32),
        ("prog_tags", u64),
        ("run_time_ns", u64),  # with kernel.bpf_stats_enabled (5.1)
        ("run_cnt", u64),
    ]


class BpfMapInfo(ctypes.Structure):
    """struct bpf_map_info, up to `btf_value_type_id` (what types a map's values, for metrics)."""

    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("key_size", u32),
        ("value_size", u32),
        ("max_entries", u32),
        ("map_flags", u32),
        ("name", OBJ_NAME),
        ("ifindex", u32),
        ("btf_vmlinux_value_type_id", u32),
        ("netns_dev", u64),
        ("netns_ino", u64),
        ("btf_id", u32),
        ("btf_key_type_id", u32),
        ("btf_value_type_id", u32),
    ]


class _XdpLinkInfo(ctypes.Structure):
    _fields_ = [("ifindex", u32)]


class _TcxLinkInfo(ctypes.Structure):
    """Also netkit's."""

    _fields_ = [("ifindex", u32), ("attach_type", u32)]


class _LinkInfoByType(ctypes.Union):
    # The kernel's union holds 64-bit fields, which align it to 8.
    _fields_ = [("xdp", _XdpLinkInfo), ("tcx", _TcxLinkInfo), ("netkit", _TcxLinkInfo), ("_align", u64)]


class BpfLinkInfo(ctypes.Structure):
    """struct bpf_link_info, with the xdp, tcx and netkit members of its type union."""

    _anonymous_ = ("_by_type",)
    _fields_ = [("type", u32), ("id", u32), ("prog_id", u32), ("_by_type", _LinkInfoByType)]
