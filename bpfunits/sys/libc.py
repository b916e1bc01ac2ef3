"""The C library, opened once for every module that calls it through ctypes, and the numbers of
the system calls it has no wrapper for, per architecture (`platform.machine()`)."""

from __future__ import annotations

import ctypes
import platform

from bpfunits.errors import BpfUnitsError

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# From each architecture's unistd.h: x86-64 has its own table, arm64 the generic one.
SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {"bpf": 321, "perf_event_open": 298},
    "aarch64": {"bpf": 280, "perf_event_open": 241},
}
# sizeof(va_list): a struct on both, which a variadic callback receives as a pointer to it.
VA_LIST_SIZES = {"x86_64": 24, "aarch64": 32}


class UnknownArchitecture(BpfUnitsError):
    pass


def _unknown(what: str, machine: str, known: dict) -> UnknownArchitecture:
    return UnknownArchitecture(f"bpfunits does not know {what} on {machine} (it knows {', '.join(sorted(known))})")


def va_list_size(machine: str | None = None) -> int:
    machine = machine or platform.machine()
    if machine not in VA_LIST_SIZES:
        raise _unknown("the size of a va_list", machine, VA_LIST_SIZES)
    return VA_LIST_SIZES[machine]


def syscall_number(name: str, machine: str | None = None) -> int:
    """The number of system call `name` on `machine` (this one's by default)."""
    machine = machine or platform.machine()
    if name not in SYSCALLS.get(machine, {}):
        raise _unknown(f"the number of the {name}() system call", machine, SYSCALLS)
    return SYSCALLS[machine][name]
