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
    "x86_64": {"bpf": 321},
    "aarch64": {"bpf": 280},
}


class UnknownArchitecture(BpfUnitsError):
    pass


def syscall_number(name: str, machine: str | None = None) -> int:
    """The number of system call `name` on `machine` (this one's by default)."""
    machine = machine or platform.machine()
    try:
        return SYSCALLS[machine][name]
    except KeyError:
        known = ", ".join(sorted(SYSCALLS))
        raise UnknownArchitecture(
            f"bpfunits does not know the number of the {name}() system call on {machine} (it knows {known})"
        ) from None
