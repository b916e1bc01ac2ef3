"""Typed wrappers over the raw bpf(2) syscall.

Each call fills its command's structure of `union bpf_attr` (bpfattr.py). File descriptors are
plain ints; callers close them with os.close.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
from dataclasses import dataclass
from enum import IntEnum
from functools import cache, partial
from pathlib import Path
from typing import TypeVar

from bpfunits.errors import BpfUnitsError
from bpfunits.sys.bpfattr import (
    ATTR_SIZE,
    Attr,
    BpfLinkInfo,
    BpfMapInfo,
    BpfProgInfo,
    BtfLoadAttr,
    EnableStatsAttr,
    GetIdAttr,
    InfoAttr,
    LinkCreateAttr,
    LinkDetachAttr,
    ProgBindMapAttr,
    LinkUpdateAttr,
    MapCreateAttr,
    RawTracepointOpenAttr,
    MapElemAttr,
    ObjAttr,
    ProgLoadAttr,
    ProgQueryAttr,
    ProgTestRunAttr,
    TcxLinkCreate,
)
from bpfunits.sys.libc import libc as _libc
from bpfunits.sys.libc import syscall_number


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
    RAW_TRACEPOINT_OPEN = 17
    ENABLE_STATS = 32
    BTF_LOAD = 18
    MAP_FREEZE = 22
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    LINK_DETACH = 34
    PROG_BIND_MAP = 35


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
    CGROUP_SOCK = 9
    RAW_TRACEPOINT = 17
    TRACING = 26
    EXT = 28
    LSM = 29


class AttachType(IntEnum):
    CGROUP_INET_INGRESS = 0
    CGROUP_INET_EGRESS = 1
    CGROUP_INET_SOCK_CREATE = 2
    PERF_EVENT = 41
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


def _raw(cmd: Cmd, attr: Attr) -> tuple[int, int]:
    """Run bpf(cmd, attr); returns (result, errno) without raising. The kernel is given
    ATTR_SIZE bytes: attr, whose size that is (see Attr); what it writes back lands in attr."""
    ret = _libc.syscall(_sys_bpf(), ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ATTR_SIZE))
    return ret, ctypes.get_errno() if ret < 0 else 0


def _call(cmd: Cmd, attr: Attr, detail: str = "") -> int:
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
    attach_btf_id: int = 0,
    log_level: int = 0,
    log: ctypes.Array | None = None,
) -> ProgLoadAttr:
    if len(insns) % 8:
        raise BpfUnitsError(f"instructions are {len(insns)} bytes, not a multiple of 8")
    return ProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=len(insns) // 8,
        insns=insns,
        license=license.encode() + b"\0",
        log_level=log_level if log is not None else 0,
        log_size=len(log) if log is not None else 0,
        log_buf=log,
        prog_flags=prog_flags,
        prog_name=_name16(name),
        expected_attach_type=expected_attach_type,
        prog_btf_fd=prog_btf_fd,
        func_info_rec_size=func_info_rec_size if func_info else 0,
        func_info=func_info or None,
        func_info_cnt=len(func_info) // func_info_rec_size if func_info else 0,
        attach_btf_id=attach_btf_id,
    )


PROG_LOAD_ATTEMPTS = 5  # as libbpf: EAGAIN means interrupted (a signal during verification), not refused


def _prog_load_retrying(attr: ProgLoadAttr) -> tuple[int, int]:
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
    attach_btf_id: int = 0,
    log_level: int = 1,
    log_size: int = 1 << 22,
) -> int:
    """Load a program; on failure, load it again with a verifier log and raise VerifierError
    with the first load's errno (the second may fail otherwise: ENOSPC for a full log)."""
    attr_of = partial(_prog_load_attr, prog_type, insns, license=license, name=name,
                      expected_attach_type=expected_attach_type, prog_flags=prog_flags, prog_btf_fd=prog_btf_fd,
                      func_info=func_info, func_info_rec_size=func_info_rec_size, attach_btf_id=attach_btf_id)
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
    attr = BtfLoadAttr(btf=blob, btf_log_buf=log, btf_size=len(blob), btf_log_size=len(log), btf_log_level=1)
    ret, err = _raw(Cmd.BTF_LOAD, attr)
    if ret < 0:
        raise BpfError("BPF_BTF_LOAD", err, " / ".join(_cstr(log.raw).strip().splitlines()[-2:]))
    return ret


def map_freeze(fd: int) -> None:
    """Make a map read-only for user space from now on."""
    _call(Cmd.MAP_FREEZE, MapElemAttr(map_fd=fd))


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
    attr = ProgTestRunAttr(prog_fd=prog_fd, data_size_in=len(data), data_size_out=size_out, data_in=data,
                           data_out=out, repeat=repeat)
    _call(Cmd.PROG_TEST_RUN, attr)
    retval = ctypes.c_int32(attr.retval).value  # a u32 in the kernel's structure; tc's verdicts go below 0
    return TestRun(retval, out.raw[: attr.data_size_out], attr.duration)


# --- pins and ids ---------------------------------------------------------------------------


def obj_pin(fd: int, path: str) -> None:
    _call(Cmd.OBJ_PIN, ObjAttr(pathname=os.fsencode(path) + b"\0", bpf_fd=fd), path)


def obj_get(path: str) -> int:
    return _call(Cmd.OBJ_GET, ObjAttr(pathname=os.fsencode(path) + b"\0"), path)


def _fd_by_id(cmd: Cmd, obj_id: int) -> int:
    return _call(cmd, GetIdAttr(start_id=obj_id), f"id {obj_id}")


def _ids(cmd: Cmd) -> list[int]:
    ids: list[int] = []
    while True:
        attr = GetIdAttr(start_id=ids[-1] if ids else 0)
        ret, err = _raw(cmd, attr)
        if ret < 0:
            if err == errno_mod.ENOENT:
                return ids
            raise BpfError(f"BPF_{cmd.name}", err)
        ids.append(attr.next_id)


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


_Info = TypeVar("_Info", BpfProgInfo, BpfMapInfo, BpfLinkInfo)


def _info(fd: int, info: _Info) -> _Info:
    """The object's info, read into `info` (whose fields set are the request): the kernel fills
    as much of it as it knows, and leaves the rest zero."""
    _call(Cmd.OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=info))
    return info


@dataclass(frozen=True)
class ProgInfo:
    id: int
    type: int
    name: str
    tag: str
    map_ids: tuple[int, ...]
    run_cnt: int = 0  # runs, counted while kernel.bpf_stats_enabled is 1
    run_time_ns: int = 0


@dataclass(frozen=True)
class MapInfo:
    id: int
    type: int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    btf_id: int = 0  # the BTF object describing its key and value (0: none)
    btf_value_type_id: int = 0

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


MAP_IDS_ROOM = 64  # map ids asked for with a program's info: more costs a second request


def prog_info(fd: int) -> ProgInfo:
    # The kernel writes at most as many map ids as there is room for, and says how many the
    # program has: asked again only when they did not fit.
    room = MAP_IDS_ROOM
    while True:
        ids = (ctypes.c_uint32 * room)()
        info = _info(fd, BpfProgInfo(nr_map_ids=room, map_ids=ctypes.addressof(ids)))
        if info.nr_map_ids <= room:
            break
        room = info.nr_map_ids
    map_ids = tuple(ids[: info.nr_map_ids])
    return ProgInfo(id=info.id, type=info.type, name=_cstr(info.name), tag=bytes(info.tag).hex(), map_ids=map_ids,
                    run_cnt=info.run_cnt, run_time_ns=info.run_time_ns)


def map_info(fd: int) -> MapInfo:
    info = _info(fd, BpfMapInfo())
    return MapInfo(info.id, info.type, _cstr(info.name), info.key_size, info.value_size, info.max_entries,
                   info.map_flags, info.btf_id, info.btf_value_type_id)


def link_info(fd: int) -> LinkInfo:
    info = _info(fd, BpfLinkInfo())
    ifindex, attach_type = 0, 0
    if info.type == LinkType.XDP:
        ifindex, attach_type = info.xdp.ifindex, AttachType.XDP
    elif info.type in (LinkType.TCX, LinkType.NETKIT):
        ifindex, attach_type = info.tcx.ifindex, info.tcx.attach_type
    return LinkInfo(info.id, info.type, info.prog_id, ifindex, int(attach_type))


# --- maps -----------------------------------------------------------------------------------


def map_create(
    map_type: int, key_size: int, value_size: int, max_entries: int, *, name: str = "", flags: int = 0
) -> int:
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
                         map_flags=flags, map_name=_name16(name))
    return _call(Cmd.MAP_CREATE, attr, f"map {name!r}" if name else "")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value under `key`, or None when there is none. Per-CPU maps: see map_lookup_percpu."""
    value = ctypes.create_string_buffer(value_size)
    ret, err = _raw(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=key, value=value))
    if ret < 0:
        if err == errno_mod.ENOENT:
            return None
        raise BpfError("BPF_MAP_LOOKUP_ELEM", err)
    return value.raw


@cache
@cache
def possible_cpus() -> int:
    """How many CPUs per-CPU maps hold a value for (from /sys/devices/system/cpu/possible, fixed
    at boot)."""
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


class PercpuLookup:
    """The value of one key of a per-CPU map, again and again, with everything the call takes
    made once (a scrape of thousands of chains' counters is mostly this): every possible CPU's
    value one after another, each rounded up to 8 bytes; None when there is none."""

    def __init__(self, fd: int, key: bytes, value_size: int) -> None:
        self._value = ctypes.create_string_buffer(((value_size + 7) & ~7) * possible_cpus())
        attr = MapElemAttr(map_fd=fd, key=key, value=self._value)  # keeps the key alive
        self._args = (_sys_bpf(), ctypes.c_int(Cmd.MAP_LOOKUP_ELEM), ctypes.byref(attr), ctypes.c_uint(ATTR_SIZE))

    def __call__(self) -> bytes | None:
        if _libc.syscall(*self._args) < 0:
            err = ctypes.get_errno()
            if err == errno_mod.ENOENT:
                return None
            raise BpfError("BPF_MAP_LOOKUP_ELEM", err)
        return self._value.raw


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    _call(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key, value=value, flags=flags))


def map_delete(fd: int, key: bytes) -> None:
    _call(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=key))


def map_keys(fd: int, key_size: int) -> list[bytes]:
    """Every key of a map, by walking MAP_GET_NEXT_KEY from the start."""
    keys: list[bytes] = []
    key: bytes | None = None
    while True:
        nxt = ctypes.create_string_buffer(key_size)
        attr = MapElemAttr(map_fd=fd, key=key, next_key=nxt)  # NULL key: the first key
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
    """Create a link. For tcx and cgroup (6.16+) links, which share the layout of these fields,
    relative_fd/relative_id name the neighbour (relative_id sets
    BPF_F_ID) and a non-zero expected_revision makes a stale view fail with ESTALE."""
    attr = LinkCreateAttr(
        prog_fd=prog_fd,
        target_ifindex=target_ifindex,
        attach_type=attach_type,
        flags=flags | (BPF_F_ID if relative_id else 0),
        tcx=TcxLinkCreate(relative_id=relative_id or relative_fd, expected_revision=expected_revision),
    )
    return _call(Cmd.LINK_CREATE, attr, f"ifindex {target_ifindex}")


def link_update(link_fd: int, new_prog_fd: int, *, old_prog_fd: int | None = None) -> None:
    """Swap a link's program atomically; with old_prog_fd, only if it still runs that one."""
    attr = LinkUpdateAttr(link_fd=link_fd, new_prog_fd=new_prog_fd)
    if old_prog_fd is not None:
        attr.flags, attr.old_prog_fd = BPF_F_REPLACE, old_prog_fd
    _call(Cmd.LINK_UPDATE, attr)


def link_detach(link_fd: int) -> None:
    _call(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=link_fd))


def prog_bind_map(prog_fd: int, map_fd: int) -> None:
    """Make a loaded program hold a map its instructions never name (Linux 5.10): metadata that
    lives exactly as long as the program."""
    _call(Cmd.PROG_BIND_MAP, ProgBindMapAttr(prog_fd=prog_fd, map_fd=map_fd))


def enable_stats() -> int:
    """Count programs' runs and run time (BPF_STATS_RUN_TIME) while the fd returned is open."""
    return _call(Cmd.ENABLE_STATS, EnableStatsAttr(type=0))


def raw_tracepoint_open(name: str | None, prog_fd: int) -> int:
    """Attach a raw tracepoint program, or with no name a tracing (fentry, fexit) program to the
    function it was loaded against (5.5+); the fd returned is a bpf_link (5.7+)."""
    attr = RawTracepointOpenAttr(name=None if name is None else name.encode() + b"\0", prog_fd=prog_fd)
    return _call(Cmd.RAW_TRACEPOINT_OPEN, attr, f"raw tracepoint {name}" if name else "tracing program")


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
        attr = ProgQueryAttr(target_ifindex=target_ifindex, attach_type=attach_type, prog_ids=prog_ids, count=count,
                             link_ids=link_ids)
        ret, err = _raw(Cmd.PROG_QUERY, attr)
        if ret < 0 and err == errno_mod.ENOSPC:
            count = max(count * 2, attr.count)
            continue
        if ret < 0 and err == errno_mod.ENOENT and attach_type in (
            AttachType.TCX_INGRESS,
            AttachType.TCX_EGRESS,
        ):
            return Query((), (), 0)  # tcx never used on this device
        if ret < 0:
            raise BpfError("BPF_PROG_QUERY", err, f"ifindex {target_ifindex}")
        return Query(tuple(prog_ids[: attr.count]), tuple(link_ids[: attr.count]), attr.revision)


def cgroup_query(cgroup_fd: int, attach_type: int) -> Query:
    """The programs attached to a cgroup hook (its own, not inherited ones) in run order, and the
    hook's revision (0 before Linux 6.16). No link ids: the kernel gives none for cgroups, and one
    before 6.6 refuses the field."""
    count = 64
    while True:
        ids = (ctypes.c_uint32 * count)()
        attr = ProgQueryAttr(target_fd=cgroup_fd, attach_type=attach_type, prog_ids=ids, count=count)
        ret, err = _raw(Cmd.PROG_QUERY, attr)
        if ret < 0 and err == errno_mod.ENOSPC:
            count = max(count * 2, attr.count)
            continue
        if ret < 0:
            raise BpfError("BPF_PROG_QUERY", err, "cgroup")
        return Query(tuple(ids[: attr.count]), (), attr.revision)
