"""Typed wrappers over the raw bpf(2) syscall.

Each call builds a zero-filled `union bpf_attr` buffer and fills the fields at the offsets of
include/uapi/linux/bpf.h. File descriptors are plain ints; callers close them with os.close.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import struct
from dataclasses import dataclass
from enum import IntEnum
from functools import cache, partial
from pathlib import Path

from bpfunits.errors import BpfUnitsError
from bpfunits.sys.libc import libc as _libc
from bpfunits.sys.libc import syscall_number

# Larger than any union bpf_attr field we use; the kernel accepts a bigger buffer when the
# bytes past its own union size are zero.
_ATTR_SIZE = 160


@cache
def _sys_bpf() -> int:
    # Looked up at the first call, so that an unknown architecture fails there, with its name,
    # and not every import (the unit language needs no kernel).
    return syscall_number("bpf")


class Cmd(IntEnum):
    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    BTF_LOAD = 18
    MAP_FREEZE = 22
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    LINK_DETACH = 34


class ProgType(IntEnum):
    UNSPEC = 0
    SOCKET_FILTER = 1
    KPROBE = 2
    SCHED_CLS = 3
    SCHED_ACT = 4
    TRACEPOINT = 5
    XDP = 6
    PERF_EVENT = 7
    CGROUP_SKB = 8
    RAW_TRACEPOINT = 17
    TRACING = 26
    EXT = 28
    LSM = 29


class AttachType(IntEnum):
    CGROUP_INET_INGRESS = 0
    CGROUP_INET_EGRESS = 1
    XDP = 37
    TCX_INGRESS = 46
    TCX_EGRESS = 47


class MapType(IntEnum):
    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    DEVMAP = 14
    CPUMAP = 16
    XSKMAP = 17
    DEVMAP_HASH = 25
    RINGBUF = 27


class LinkType(IntEnum):
    UNSPEC = 0
    RAW_TRACEPOINT = 1
    TRACING = 2
    CGROUP = 3
    ITER = 4
    NETNS = 5
    XDP = 6
    PERF_EVENT = 7
    KPROBE_MULTI = 8
    STRUCT_OPS = 9
    NETFILTER = 10
    TCX = 11
    UPROBE_MULTI = 12
    NETKIT = 13


# Flags for PROG_ATTACH/LINK_CREATE (mprog) and LINK_UPDATE.
BPF_F_REPLACE = 1 << 2
BPF_F_BEFORE = 1 << 3
BPF_F_AFTER = 1 << 4
BPF_F_ID = 1 << 5
BPF_F_LINK = 1 << 13
# Map flags.
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_XDP_HAS_FRAGS = 1 << 5  # a PROG_LOAD flag: the XDP program handles multi-buffer frames
# MAP_UPDATE_ELEM flags.
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2


class BpfError(BpfUnitsError, OSError):
    """A bpf() call failed; `.errno` holds the error, the message names the command."""

    def __init__(self, command: str, err: int, detail: str = "") -> None:
        message = f"{command}: {os.strerror(err)}" + (f" ({detail})" if detail else "")
        OSError.__init__(self, err, message)
        self.command = command
        self.message = message  # strerror, typed

    def __str__(self) -> str:
        return self.message


class VerifierError(BpfError):
    """PROG_LOAD was rejected; `.log` holds the full verifier log."""

    TAIL_LINES = 20

    def __init__(self, command: str, err: int, log: str, detail: str = "") -> None:
        super().__init__(command, err, detail)
        self.log = log

    def __str__(self) -> str:
        tail = "\n".join(self.log.rstrip("\n").splitlines()[-self.TAIL_LINES :])
        return f"{self.message}\nverifier log (last lines):\n{tail}" if tail else self.message


class _Attr:
    """A zero-filled union bpf_attr with typed setters; keeps referenced buffers alive."""

    def __init__(self, size: int = _ATTR_SIZE) -> None:
        self.buf = ctypes.create_string_buffer(size)
        self._keep: list[object] = []

    def u32(self, off: int, value: int) -> None:
        struct.pack_into("<I", self.buf, off, value & 0xFFFFFFFF)

    def u64(self, off: int, value: int) -> None:
        struct.pack_into("<Q", self.buf, off, value)

    def ptr(self, off: int, data: ctypes.Array | bytes | None) -> None:
        if data is None:
            return
        if isinstance(data, bytes):
            data = ctypes.create_string_buffer(data, len(data))
        self._keep.append(data)
        self.u64(off, ctypes.addressof(data))

    def put(self, off: int, data: bytes) -> None:
        ctypes.memmove(ctypes.addressof(self.buf) + off, data, len(data))

    def get_u32(self, off: int) -> int:
        return struct.unpack_from("<I", self.buf, off)[0]

    def get_u64(self, off: int) -> int:
        return struct.unpack_from("<Q", self.buf, off)[0]


def _raw(cmd: Cmd, attr: _Attr) -> tuple[int, int]:
    """Run bpf(cmd, attr); returns (result, errno) without raising."""
    ret = _libc.syscall(_sys_bpf(), ctypes.c_int(cmd), attr.buf, ctypes.c_uint(len(attr.buf)))
    return ret, (ctypes.get_errno() if ret < 0 else 0)


def _call(cmd: Cmd, attr: _Attr, detail: str = "") -> int:
    ret, err = _raw(cmd, attr)
    if ret < 0:
        raise BpfError(f"BPF_{cmd.name}", err, detail)
    return ret


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def _name16(name: str) -> bytes:
    # Object names are 15 characters plus NUL; the kernel rejects other characters than
    # alphanumerics, '_' and '.', so longer names are cut rather than refused.
    return name.encode()[:15]


# --- programs -------------------------------------------------------------------------------


LOG_STATS = 4  # BPF_LOG_STATS: the verifier's summary only, given on success too


def _prog_load_attr(
    prog_type: int,
    insns: bytes,
    *,
    license: str,
    name: str,
    expected_attach_type: int,
    prog_flags: int,
    prog_btf_fd: int,
    func_info: bytes,
    func_info_rec_size: int,
    log_level: int = 0,
    log: ctypes.Array | None = None,
) -> _Attr:
    if len(insns) % 8:
        raise BpfUnitsError(f"instructions are {len(insns)} bytes, not a multiple of 8")
    attr = _Attr()
    attr.u32(0, prog_type)
    attr.u32(4, len(insns) // 8)
    attr.ptr(8, insns)
    attr.ptr(16, license.encode() + b"\0")
    if log is not None:
        attr.u32(24, log_level)
        attr.u32(28, len(log))
        attr.ptr(32, log)
    attr.u32(44, prog_flags)
    attr.put(48, _name16(name))
    attr.u32(68, expected_attach_type)
    attr.u32(72, prog_btf_fd)
    if func_info:
        attr.u32(76, func_info_rec_size)
        attr.ptr(80, func_info)
        attr.u32(88, len(func_info) // func_info_rec_size)
    return attr


PROG_LOAD_ATTEMPTS = 5  # as libbpf: EAGAIN means interrupted (a signal during verification), not refused


def _prog_load_retrying(attr: _Attr) -> tuple[int, int]:
    for _ in range(PROG_LOAD_ATTEMPTS):
        fd, err = _raw(Cmd.PROG_LOAD, attr)
        if err != errno_mod.EAGAIN:
            break
    return fd, err


def prog_load(
    prog_type: int,
    insns: bytes,
    *,
    license: str = "GPL",
    name: str = "",
    expected_attach_type: int = 0,
    prog_flags: int = 0,
    prog_btf_fd: int = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 8,
    log_level: int = 1,
    log_size: int = 1 << 22,
) -> int:
    """Load a program; on failure, load it again with a verifier log and raise VerifierError
    with the first load's errno (the second may fail otherwise: ENOSPC for a full log)."""
    attr_of = partial(_prog_load_attr, prog_type, insns, license=license, name=name,
                      expected_attach_type=expected_attach_type, prog_flags=prog_flags, prog_btf_fd=prog_btf_fd,
                      func_info=func_info, func_info_rec_size=func_info_rec_size)
    fd, first_err = _prog_load_retrying(attr_of())
    if fd >= 0:
        return fd
    # The log costs time and memory, so it is only asked for once the load has failed.
    log = ctypes.create_string_buffer(log_size)
    fd, _ = _prog_load_retrying(attr_of(log_level=log_level, log=log))
    if fd >= 0:  # did not fail the second time (e.g. a transient ENOMEM); keep it
        return fd
    text = _cstr(log.raw)
    what = f"program {name!r}" if name else ""
    if text:
        raise VerifierError("BPF_PROG_LOAD", first_err, text, what)
    raise BpfError("BPF_PROG_LOAD", first_err, what)


def prog_verify_stats(
    prog_type: int,
    insns: bytes,
    *,
    expected_attach_type: int = 0,
    prog_btf_fd: int = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 8,
) -> str:
    """Verify a program and return the verifier's statistics (processed instructions, stack
    depth of every function); the program itself is not kept."""
    log = ctypes.create_string_buffer(1 << 12)
    attr = _prog_load_attr(prog_type, insns, license="GPL", name="", expected_attach_type=expected_attach_type,
                           prog_flags=0, prog_btf_fd=prog_btf_fd, func_info=func_info,
                           func_info_rec_size=func_info_rec_size, log_level=LOG_STATS, log=log)
    os.close(_call(Cmd.PROG_LOAD, attr, "verifying for statistics"))
    return _cstr(log.raw)


def btf_load(blob: bytes) -> int:
    """Load a BTF blob; returns its fd."""
    log = ctypes.create_string_buffer(1 << 16)
    attr = _Attr()
    attr.ptr(0, blob)
    attr.ptr(8, log)
    attr.u32(16, len(blob))
    attr.u32(20, len(log))
    attr.u32(24, 1)
    ret, err = _raw(Cmd.BTF_LOAD, attr)
    if ret < 0:
        raise BpfError("BPF_BTF_LOAD", err, " / ".join(_cstr(log.raw).strip().splitlines()[-2:]))
    return ret


def map_freeze(fd: int) -> None:
    """Make a map read-only for user space from now on."""
    attr = _Attr()
    attr.u32(0, fd)
    _call(Cmd.MAP_FREEZE, attr)


def prog_map_fds(prog_id: int) -> dict[str, int]:
    """Fds of the maps the program with this id uses, by map name (the first of a name wins;
    the caller closes them)."""
    prog_fd = prog_get_fd_by_id(prog_id)
    try:
        map_ids = prog_info(prog_fd).map_ids
    finally:
        os.close(prog_fd)
    fds: dict[str, int] = {}
    try:
        for map_id in map_ids:
            fd = map_get_fd_by_id(map_id)
            name = map_info(fd).name
            if name in fds:
                os.close(fd)
            else:
                fds[name] = fd
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


@dataclass(frozen=True)
class TestRun:
    __test__ = False  # not a pytest test class

    retval: int
    data_out: bytes
    duration_ns: int


def prog_test_run(
    prog_fd: int, data: bytes, *, repeat: int = 1, data_size_out: int | None = None
) -> TestRun:
    """Run a program on `data` with BPF_PROG_TEST_RUN; duration_ns is the average per run."""
    size_out = len(data) + 256 if data_size_out is None else data_size_out
    out = ctypes.create_string_buffer(max(size_out, 1))
    attr = _Attr()
    attr.u32(0, prog_fd)
    attr.u32(8, len(data))
    attr.u32(12, size_out)
    attr.ptr(16, data)
    attr.ptr(24, out)
    attr.u32(32, repeat)
    _call(Cmd.PROG_TEST_RUN, attr)
    retval = struct.unpack_from("<i", attr.buf, 4)[0]
    return TestRun(retval, out.raw[: attr.get_u32(12)], attr.get_u32(36))


# --- pins and ids ---------------------------------------------------------------------------


def obj_pin(fd: int, path: str) -> None:
    attr = _Attr()
    attr.ptr(0, os.fsencode(path) + b"\0")
    attr.u32(8, fd)
    _call(Cmd.OBJ_PIN, attr, path)


def obj_get(path: str) -> int:
    attr = _Attr()
    attr.ptr(0, os.fsencode(path) + b"\0")
    return _call(Cmd.OBJ_GET, attr, path)


def _fd_by_id(cmd: Cmd, obj_id: int) -> int:
    attr = _Attr()
    attr.u32(0, obj_id)
    return _call(cmd, attr, f"id {obj_id}")


def _ids(cmd: Cmd) -> list[int]:
    ids: list[int] = []
    attr = _Attr()
    while True:
        attr.u32(0, ids[-1] if ids else 0)  # start_id; next_id comes back at 4
        ret, err = _raw(cmd, attr)
        if ret < 0:
            if err == errno_mod.ENOENT:
                return ids
            raise BpfError(f"BPF_{cmd.name}", err)
        ids.append(attr.get_u32(4))


def prog_ids() -> list[int]:
    """The ids of every program loaded in the kernel."""
    return _ids(Cmd.PROG_GET_NEXT_ID)


def map_ids() -> list[int]:
    """The ids of every map in the kernel."""
    return _ids(Cmd.MAP_GET_NEXT_ID)


def prog_get_fd_by_id(prog_id: int) -> int:
    return _fd_by_id(Cmd.PROG_GET_FD_BY_ID, prog_id)


def map_get_fd_by_id(map_id: int) -> int:
    return _fd_by_id(Cmd.MAP_GET_FD_BY_ID, map_id)


def link_get_fd_by_id(link_id: int) -> int:
    return _fd_by_id(Cmd.LINK_GET_FD_BY_ID, link_id)


def link_ids() -> list[int]:
    """The ids of every link in the kernel."""
    return _ids(Cmd.LINK_GET_NEXT_ID)


# --- object info ----------------------------------------------------------------------------


def _info(fd: int, info: ctypes.Array) -> None:
    attr = _Attr()
    attr.u32(0, fd)
    attr.u32(4, len(info))
    attr.ptr(8, info)
    _call(Cmd.OBJ_GET_INFO_BY_FD, attr)


@dataclass(frozen=True)
class ProgInfo:
    id: int
    type: int
    name: str
    tag: str
    map_ids: tuple[int, ...]


@dataclass(frozen=True)
class MapInfo:
    id: int
    type: int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """What must match for one map to stand in for another: type, sizes, entries, flags."""
        return (self.type, self.key_size, self.value_size, self.max_entries, self.flags)


@dataclass(frozen=True)
class LinkInfo:
    id: int
    type: int
    prog_id: int
    ifindex: int  # xdp and tcx links; 0 for others
    attach_type: int  # tcx links report theirs; xdp links are AttachType.XDP; 0 for others


_PROG_INFO_SIZE = 232
_MAP_INFO_SIZE = 88
_LINK_INFO_SIZE = 48


def prog_info(fd: int) -> ProgInfo:
    info = ctypes.create_string_buffer(_PROG_INFO_SIZE)
    _info(fd, info)
    nr_maps = struct.unpack_from("<I", info, 52)[0]
    map_ids: tuple[int, ...] = ()
    if nr_maps:
        # Second call with a buffer for the map ids (nr_map_ids at 52, map_ids pointer at 56).
        ids = (ctypes.c_uint32 * nr_maps)()
        info = ctypes.create_string_buffer(_PROG_INFO_SIZE)
        struct.pack_into("<IQ", info, 52, nr_maps, ctypes.addressof(ids))
        _info(fd, info)
        map_ids = tuple(ids[: min(nr_maps, struct.unpack_from("<I", info, 52)[0])])
    prog_type, prog_id = struct.unpack_from("<II", info, 0)
    return ProgInfo(
        id=prog_id,
        type=prog_type,
        name=_cstr(info.raw[64:80]),
        tag=info.raw[8:16].hex(),
        map_ids=map_ids,
    )


def map_info(fd: int) -> MapInfo:
    info = ctypes.create_string_buffer(_MAP_INFO_SIZE)
    _info(fd, info)
    map_type, map_id, key_size, value_size, max_entries, flags = struct.unpack_from("<6I", info, 0)
    return MapInfo(map_id, map_type, _cstr(info.raw[24:40]), key_size, value_size, max_entries, flags)


def link_info(fd: int) -> LinkInfo:
    info = ctypes.create_string_buffer(_LINK_INFO_SIZE)
    _info(fd, info)
    link_type, link_id, prog_id = struct.unpack_from("<III", info, 0)
    ifindex, attach_type = 0, 0
    # The type-specific union starts at 16: xdp {ifindex}, tcx/netkit {ifindex, attach_type}.
    if link_type == LinkType.XDP:
        ifindex, attach_type = struct.unpack_from("<I", info, 16)[0], AttachType.XDP
    elif link_type in (LinkType.TCX, LinkType.NETKIT):
        ifindex, attach_type = struct.unpack_from("<II", info, 16)
    return LinkInfo(link_id, link_type, prog_id, ifindex, int(attach_type))


# --- maps -----------------------------------------------------------------------------------


def map_create(
    map_type: int, key_size: int, value_size: int, max_entries: int, *, name: str = "", flags: int = 0
) -> int:
    attr = _Attr()
    attr.u32(0, map_type)
    attr.u32(4, key_size)
    attr.u32(8, value_size)
    attr.u32(12, max_entries)
    attr.u32(16, flags)
    attr.put(28, _name16(name))
    return _call(Cmd.MAP_CREATE, attr, f"map {name!r}" if name else "")


def _elem_attr(fd: int, key: bytes, value: ctypes.Array | bytes | None, flags: int = 0) -> _Attr:
    attr = _Attr()
    attr.u32(0, fd)
    attr.ptr(8, key)
    attr.ptr(16, value)
    attr.u64(24, flags)
    return attr


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value under `key`, or None when there is none. Per-CPU maps: see map_lookup_percpu."""
    value = ctypes.create_string_buffer(value_size)
    ret, err = _raw(Cmd.MAP_LOOKUP_ELEM, _elem_attr(fd, key, value))
    if ret < 0:
        if err == errno_mod.ENOENT:
            return None
        raise BpfError("BPF_MAP_LOOKUP_ELEM", err)
    return value.raw


@cache
def possible_cpus() -> int:
    """How many CPUs per-CPU maps hold a value for (from /sys/devices/system/cpu/possible)."""
    count = 0
    for part in Path("/sys/devices/system/cpu/possible").read_text().strip().split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def map_lookup_percpu(fd: int, key: bytes, value_size: int) -> list[bytes] | None:
    """One value per possible CPU under `key`, or None when there is none."""
    # The kernel rounds each CPU's value up to 8 bytes.
    stride = (value_size + 7) & ~7
    raw = map_lookup(fd, key, stride * possible_cpus())
    if raw is None:
        return None
    return [raw[i * stride : i * stride + value_size] for i in range(possible_cpus())]


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    _call(Cmd.MAP_UPDATE_ELEM, _elem_attr(fd, key, value, flags))


def map_delete(fd: int, key: bytes) -> None:
    _call(Cmd.MAP_DELETE_ELEM, _elem_attr(fd, key, None))


def map_keys(fd: int, key_size: int) -> list[bytes]:
    """Every key of a map, by walking MAP_GET_NEXT_KEY from the start."""
    keys: list[bytes] = []
    key: bytes | None = None
    while True:
        nxt = ctypes.create_string_buffer(key_size)
        attr = _Attr()
        attr.u32(0, fd)
        attr.ptr(8, key)  # NULL key: the first key
        attr.ptr(16, nxt)
        ret, err = _raw(Cmd.MAP_GET_NEXT_KEY, attr)
        if ret < 0:
            if err == errno_mod.ENOENT:
                return keys
            raise BpfError("BPF_MAP_GET_NEXT_KEY", err)
        key = nxt.raw
        keys.append(key)


# --- links ----------------------------------------------------------------------------------


def link_create(
    prog_fd: int,
    target_ifindex: int,
    attach_type: int,
    *,
    flags: int = 0,
    relative_fd: int = 0,
    relative_id: int = 0,
    expected_revision: int = 0,
) -> int:
    """Create a link. For tcx, relative_fd/relative_id name the neighbour (relative_id sets
    BPF_F_ID) and a non-zero expected_revision makes a stale view fail with ESTALE."""
    attr = _Attr()
    attr.u32(0, prog_fd)
    attr.u32(4, target_ifindex)
    attr.u32(8, attach_type)
    attr.u32(12, flags | (BPF_F_ID if relative_id else 0))
    attr.u32(16, relative_id or relative_fd)
    attr.u64(24, expected_revision)
    return _call(Cmd.LINK_CREATE, attr, f"ifindex {target_ifindex}")


def link_update(link_fd: int, new_prog_fd: int, *, old_prog_fd: int | None = None) -> None:
    """Swap a link's program atomically; with old_prog_fd, only if it still runs that one."""
    attr = _Attr()
    attr.u32(0, link_fd)
    attr.u32(4, new_prog_fd)
    if old_prog_fd is not None:
        attr.u32(8, BPF_F_REPLACE)
        attr.u32(12, old_prog_fd)
    _call(Cmd.LINK_UPDATE, attr)


def link_detach(link_fd: int) -> None:
    attr = _Attr()
    attr.u32(0, link_fd)
    _call(Cmd.LINK_DETACH, attr)


@dataclass(frozen=True)
class Query:
    prog_ids: tuple[int, ...]
    link_ids: tuple[int, ...]
    revision: int


def prog_query(target_ifindex: int, attach_type: int) -> Query:
    """The programs (and their links, 0 for none) on a hook, in run order."""
    count = 16
    while True:
        prog_ids = (ctypes.c_uint32 * count)()
        link_ids = (ctypes.c_uint32 * count)()
        attr = _Attr()
        attr.u32(0, target_ifindex)
        attr.u32(4, attach_type)
        attr.ptr(16, prog_ids)
        attr.u32(24, count)
        attr.ptr(40, link_ids)
        ret, err = _raw(Cmd.PROG_QUERY, attr)
        if ret < 0 and err == errno_mod.ENOSPC:
            count = max(count * 2, attr.get_u32(24))
            continue
        if ret < 0 and err == errno_mod.ENOENT and attach_type in (
            AttachType.TCX_INGRESS,
            AttachType.TCX_EGRESS,
        ):
            return Query((), (), 0)  # tcx never used on this device
        if ret < 0:
            raise BpfError("BPF_PROG_QUERY", err, f"ifindex {target_ifindex}")
        n = attr.get_u32(24)
        return Query(tuple(prog_ids[:n]), tuple(link_ids[:n]), attr.get_u64(56))
