"""Reading a foreign libxdp (xdp-loader) dispatcher, as `xdp-loader status` does, so that status
can say which programs a foreign XDP program on an interface really runs.

libxdp's dispatcher is an XDP program named `xdp_dispatcher` whose only map is its `.rodata`: a
read-only (for programs) one-entry array holding `struct xdp_dispatcher_config`. Its component
programs are freplace programs attached to its slots `prog0`..`prog9`, pinned by libxdp under
`<bpffs>/xdp/dispatch-IFINDEX-PROGID/progN-prog` in run order.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from bpfunits.hooks import XDP_VERDICTS
from bpfunits.sys import bpf

PROG_NAME = "xdp_dispatcher"
PIN_ROOT = Path("/sys/fs/bpf/xdp")  # libxdp's own default (LIBXDP_BPFFS unset)
MAX_SLOTS = 10
MAGIC = 236  # 'X' + 'D' + 'P', the first byte of version 2 and later
RETVAL_BIT = 31  # the dispatcher's own "no program in this slot" verdict, always chained on
# struct xdp_dispatcher_config: v1 {u8 num; u32 chain_call_actions[10]; u32 run_prios[10]};
# v2 {u8 magic, version, num, is_xdp_frags; u32 chain_call_actions[10], run_prios[10], flags[10]}.
_V1_SIZE = 4 + 2 * 4 * MAX_SLOTS
_V2_SIZE = 4 + 3 * 4 * MAX_SLOTS


@dataclass(frozen=True)
class Slot:
    """One component of a dispatcher, in run order."""

    prog_id: int | None  # None where libxdp's pin could not be read
    name: str
    run_prio: int
    chain_call_actions: tuple[str, ...]  # the verdicts on which the next component runs


@dataclass(frozen=True)
class Dispatcher:
    version: int
    slots: tuple[Slot, ...]


@dataclass(frozen=True)
class DispatcherConfig:
    version: int
    run_prios: tuple[int, ...]
    chain_call_actions: tuple[int, ...]  # bitmaps over XDP verdict codes


def parse_config(value: bytes) -> DispatcherConfig | None:
    """The dispatcher configuration in a `.rodata` value, or None if it is none libxdp wrote."""
    if len(value) == _V2_SIZE and value[0] == MAGIC:
        version, num, offset = value[1], value[2], 4
    elif len(value) == _V1_SIZE:
        version, num, offset = 1, value[0], 4
    else:
        return None
    if not 0 < num <= MAX_SLOTS:
        return None
    actions = struct.unpack_from(f"<{MAX_SLOTS}I", value, offset)[:num]
    prios = struct.unpack_from(f"<{MAX_SLOTS}I", value, offset + 4 * MAX_SLOTS)[:num]
    return DispatcherConfig(version, prios, actions)


def action_names(bitmap: int) -> tuple[str, ...]:
    bitmap &= ~(1 << RETVAL_BIT)
    return tuple(name for name, code in XDP_VERDICTS.items() if bitmap & (1 << code))


def _config(prog_fd: int) -> DispatcherConfig | None:
    info = bpf.prog_info(prog_fd)
    if info.name != PROG_NAME or len(info.map_ids) != 1:
        return None
    map_fd = bpf.map_get_fd_by_id(info.map_ids[0])
    try:
        shape = bpf.map_info(map_fd)
        if (shape.key_size, shape.max_entries) != (4, 1) or not shape.flags & bpf.BPF_F_RDONLY_PROG:
            return None
        value = bpf.map_lookup(map_fd, struct.pack("<I", 0), shape.value_size)
    finally:
        os.close(map_fd)
    return parse_config(value) if value else None


def _pinned_component(path: Path) -> tuple[int | None, str]:
    try:
        fd = bpf.obj_get(str(path))
    except bpf.BpfError:
        return None, ""
    try:
        info = bpf.prog_info(fd)
        return info.id, info.name
    finally:
        os.close(fd)


def dispatcher_of(prog_id: int, ifindex: int, pin_root: Path = PIN_ROOT) -> Dispatcher | None:
    """The dispatcher running as `prog_id` on `ifindex`, or None if that program is none."""
    try:
        fd = bpf.prog_get_fd_by_id(prog_id)
    except bpf.BpfError:
        return None  # gone meanwhile
    try:
        config = _config(fd)
    finally:
        os.close(fd)
    if config is None:
        return None
    pins = pin_root / f"dispatch-{ifindex}-{prog_id}"
    slots = []
    for n, (prio, actions) in enumerate(zip(config.run_prios, config.chain_call_actions, strict=False)):
        component_id, name = _pinned_component(pins / f"prog{n}-prog")
        slots.append(Slot(component_id, name, prio, action_names(actions)))
    return Dispatcher(config.version, tuple(slots))
