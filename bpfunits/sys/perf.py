"""perf_event_open(2) for the events a BPF program attaches to through a perf link: a
tracepoint, a kprobe or a uprobe (the kernel's dynamic PMUs). The fd it returns is what
BPF_LINK_CREATE (attach type BPF_PERF_EVENT) takes; the link keeps the event once made."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from bpfunits.errors import BpfUnitsError
from bpfunits.sys.libc import libc, syscall_number

TRACEFS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
PMUS = Path("/sys/bus/event_source/devices")
PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 8
_ATTR_SIZE = 128  # struct perf_event_attr as of 6.x; older kernels accept it if the tail is zero


class PerfError(BpfUnitsError):
    pass


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr, up to config2 (include/uapi/linux/perf_event.h)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),  # bitfields: disabled, inherit, ...
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),  # kprobe_func, uprobe_path
        ("config2", ctypes.c_uint64),  # probe_offset
        ("_rest", ctypes.c_uint8 * (_ATTR_SIZE - 72)),
    ]


def _open(attr: PerfEventAttr, what: str) -> int:
    attr.size = _ATTR_SIZE
    attr.sample_period, attr.wakeup_events = 1, 1
    fd = libc.syscall(syscall_number("perf_event_open"), ctypes.byref(attr), -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise PerfError(f"perf_event_open({what}): {os.strerror(err)}")
    return int(fd)


def tracefs() -> Path | None:
    """Where tracefs is mounted (its events folder lists the tracepoints), None if nowhere."""
    return next((p for p in TRACEFS if (p / "events").is_dir()), None)


def mount_tracefs() -> Path:
    """tracefs, mounted at its place where it is not yet (as bpffs is, for pins)."""
    found = tracefs()
    if found is not None:
        return found
    where = TRACEFS[0]
    if libc.mount(b"nodev", os.fsencode(where), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise PerfError(f"tracefs is not mounted, and mounting it at {where} failed: {os.strerror(err)}: "
                        "tracepoints cannot be found")
    return where


def tracepoint_id(category: str, name: str) -> int:
    root = mount_tracefs()
    try:
        return int((root / "events" / category / name / "id").read_text())
    except FileNotFoundError:
        raise PerfError(f"the kernel has no tracepoint {category}/{name}") from None


def open_tracepoint(category: str, name: str) -> int:
    attr = PerfEventAttr(type=PERF_TYPE_TRACEPOINT, config=tracepoint_id(category, name))
    return _open(attr, f"tracepoint {category}/{name}")


def pmu(name: str) -> tuple[int, int]:
    """The type of dynamic PMU `name` (kprobe, uprobe) and its retprobe config bit."""
    folder = PMUS / name
    try:
        pmu_type = int((folder / "type").read_text())
        retprobe = (folder / "format" / "retprobe").read_text().strip()  # "config:0"
    except FileNotFoundError:
        raise PerfError(f"the kernel has no {name} events ({folder} does not exist)") from None
    return pmu_type, int(retprobe.partition(":")[2])


def open_probe(kind: str, target: str, offset: int, retprobe: bool) -> int:
    """A kprobe (`target` a function, `offset` into it) or uprobe (`target` a binary's path,
    `offset` a file offset), or its return probe."""
    pmu_type, bit = pmu(kind)
    raw = ctypes.create_string_buffer(os.fsencode(target))
    attr = PerfEventAttr(type=pmu_type, config=(1 << bit) if retprobe else 0,
                         config1=ctypes.addressof(raw), config2=offset)
    return _open(attr, f"{'ret' if retprobe else ''}{kind} {target}+{offset:#x}")
