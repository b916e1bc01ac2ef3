"""Attaching, replacing and detaching bpfunits' one program on a hook, whatever the backend.

The backend comes from the options and what the kernel offers (probe); once something is
attached, the pin in the hook folder says which backend holds it (`link` for XDP links and tcx,
`prog` for XDP netlink and cls_bpf). Every change of what runs on a hook is one kernel operation:
replacing never detaches first. A program bpfunits did not attach is never changed unless the
caller passes takeover=True.

All calls act in the calling thread's network namespace.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.hooks import clsbpf, probe, tcx, xdp
from bpfunits.state import pins
from bpfunits.sys import bpf
from bpfunits.state.bpffs import StateRoot, remove_tree
from bpfunits.hooks.clsbpf import Slot
from bpfunits.hooks.observe import Attached, Backend, observe
from bpfunits.hooks.probe import TcBackend, XdpBackend
from bpfunits.hooks.tcx import TcPosition
from bpfunits.hooks.xdp import XdpMode


class AttachError(BpfUnitsError):
    pass


@dataclass(frozen=True)
class AttachOptions:
    xdp_backend: XdpBackend = XdpBackend.AUTO
    xdp_mode: XdpMode = XdpMode.AUTO
    tc_backend: TcBackend = TcBackend.AUTO
    tc_position: TcPosition = TcPosition.FIRST  # tcx: before or after the programs already there
    slot: Slot = field(default_factory=Slot)  # cls_bpf: our filter's prio and handle


def _where(ifindex: int, hook: Hook) -> str:
    return f"ifindex {ifindex} {hook.value}"


def held_by(ifindex: int, hook: Hook, root: StateRoot) -> Backend | None:
    """The backend through which bpfunits holds this hook, or None if it holds nothing there."""
    hook_dir = root.hook_path(ifindex, hook)
    if (hook_dir / pins.LINK).exists():
        return Backend.XDP_LINK if hook is Hook.XDP else Backend.TCX
    if (hook_dir / pins.PROG).exists():
        return Backend.XDP_NETLINK if hook is Hook.XDP else Backend.CLS_BPF
    return None


def _ours(ifindex: int, hook: Hook, root: StateRoot) -> Attached:
    mine = observe(ifindex, hook, root).ours
    if len(mine) != 1:
        raise AttachError(
            f"{_where(ifindex, hook)}: expected one program of ours attached, the kernel shows {len(mine)}"
        )
    return mine[0]


def _foreign_refusal(ifindex: int, hook: Hook, prog_id: int, what: str) -> AttachError:
    return AttachError(
        f"{_where(ifindex, hook)} runs program id {prog_id} ({what}) that bpfunits did not attach; "
        f"refusing to replace it (take it over explicitly to do so)"
    )


def _take_over_xdp(ifindex: int, foreign: Attached, prog_fd: int, hook_dir: Path) -> None:
    # The foreign program's own mechanism is the only one that swaps it atomically, so a
    # taken-over hook stays with that backend and mode.
    foreign_fd = bpf.prog_get_fd_by_id(foreign.prog_id)
    try:
        if foreign.link_id is None:
            xdp.replace_netlink(ifindex, prog_fd, hook_dir, expected_fd=foreign_fd)
            return
        link_fd = bpf.link_get_fd_by_id(foreign.link_id)
        try:
            bpf.link_update(link_fd, prog_fd, old_prog_fd=foreign_fd)
            pins.pin(link_fd, hook_dir / pins.LINK)
        finally:
            os.close(link_fd)
    finally:
        os.close(foreign_fd)


def _attach_xdp(ifindex: int, prog_fd: int, root: StateRoot, options: AttachOptions, takeover: bool) -> None:
    hook_dir = root.hook_dir(ifindex, Hook.XDP)
    present = observe(ifindex, Hook.XDP, root).programs
    if present:  # not ours: held_by found no pin
        if not takeover:
            foreign = present[0]
            raise _foreign_refusal(ifindex, Hook.XDP, foreign.prog_id, f"{foreign.name!r}, {foreign.backend.value}")
        _take_over_xdp(ifindex, present[0], prog_fd, hook_dir)
    elif probe.choose_xdp_backend(options.xdp_backend, probe.features()) is XdpBackend.LINK:
        xdp.attach_link(ifindex, prog_fd, hook_dir, options.xdp_mode)
    else:
        xdp.attach_netlink(ifindex, prog_fd, hook_dir, options.xdp_mode)


def _attach_tc(
    ifindex: int, hook: Hook, prog_fd: int, root: StateRoot, options: AttachOptions, takeover: bool
) -> None:
    hook_dir = root.hook_dir(ifindex, hook)
    if probe.choose_tc_backend(options.tc_backend, probe.features()) is TcBackend.TCX:
        # tcx programs coexist: adding ours changes none of the others.
        tcx.attach(ifindex, hook, prog_fd, hook_dir, options.tc_position)
        return
    slot = options.slot
    occupant = next(
        (f for f in clsbpf.filters(ifindex, hook) if (f.prio, f.handle) == (slot.prio, slot.handle)), None
    )
    if occupant is not None and not takeover:
        raise _foreign_refusal(ifindex, hook, occupant.prog_id, f"cls_bpf filter {occupant.name!r} in bpfunits' slot")
    clsbpf.install(ifindex, hook, prog_fd, hook_dir, slot)


def attach(
    ifindex: int,
    hook: Hook,
    prog_fd: int,
    root: StateRoot,
    options: AttachOptions = AttachOptions(),
    *,
    takeover: bool = False,
) -> Attached:
    """Attach `prog_fd` as bpfunits' program on the hook; returns it as observed. With
    takeover, a foreign program in the way (XDP's one program, or the filter in our cls_bpf
    slot) is replaced in one step; without it, such a program makes the attach fail."""
    hook = Hook(hook)
    if held_by(ifindex, hook, root) is not None:
        raise AttachError(f"{_where(ifindex, hook)}: bpfunits has a program attached already; replace it instead")
    try:
        if hook is Hook.XDP:
            _attach_xdp(ifindex, prog_fd, root, options, takeover)
        else:
            _attach_tc(ifindex, hook, prog_fd, root, options, takeover)
    except BaseException as e:
        _prune(root.hook_path(ifindex, hook))  # no empty folder left behind a failed attach
        if isinstance(e, OSError):  # the kernel's (BpfError, RtnlError) or bpffs' (a pin's rename)
            failed = AttachError(f"{_where(ifindex, hook)}: attaching failed: {e}")
            raise _raced(ifindex, hook, root, e) or failed from e
        raise
    return _ours(ifindex, hook, root)


def _raced(ifindex: int, hook: Hook, root: StateRoot, error: OSError) -> AttachError | None:
    """Why XDP refused our program because one arrived since we looked (EEXIST from a link,
    EBUSY from netlink): naming that program, not the errno."""
    if hook is not Hook.XDP or error.errno not in (errno.EEXIST, errno.EBUSY):
        return None
    try:
        present = observe(ifindex, hook, root).foreign
    except (BpfUnitsError, OSError):
        return None
    if not present:
        return None
    what = f"{present[0].name!r}, {present[0].backend.value}, attached while bpfunits was attaching"
    return _foreign_refusal(ifindex, hook, present[0].prog_id, what)


def _our_slot(ifindex: int, hook: Hook, hook_dir: Path) -> Slot | None:
    """The slot of our cls_bpf filter: the one running our pinned program."""
    ours = pins.prog_id(hook_dir)
    return next((Slot(f.prio, f.handle) for f in clsbpf.filters(ifindex, hook) if f.prog_id == ours), None)


def _replace_filter(ifindex: int, hook: Hook, new_prog_fd: int, hook_dir: Path, old_prog_fd: int | None) -> None:
    slot = _our_slot(ifindex, hook, hook_dir)
    if slot is None:
        raise AttachError(f"{_where(ifindex, hook)}: bpfunits' cls_bpf filter is gone (removed by someone else?)")
    # cls_bpf has no compare-and-swap; this check narrows the race but cannot close it.
    if old_prog_fd is not None and bpf.prog_info(old_prog_fd).id != pins.prog_id(hook_dir):
        raise AttachError(f"{_where(ifindex, hook)}: runs another program than the one to replace")
    clsbpf.install(ifindex, hook, new_prog_fd, hook_dir, slot)


def replace(
    ifindex: int, hook: Hook, new_prog_fd: int, root: StateRoot, *, old_prog_fd: int | None = None
) -> Attached:
    """Swap bpfunits' program on the hook for `new_prog_fd` in one kernel operation. With
    `old_prog_fd`, only if that is still the program running (links and netlink check this
    atomically; cls_bpf just before)."""
    hook = Hook(hook)
    backend = held_by(ifindex, hook, root)
    hook_dir = root.hook_path(ifindex, hook)
    try:
        if backend is None:
            raise AttachError(f"{_where(ifindex, hook)}: bpfunits has no program attached to replace")
        if backend in (Backend.XDP_LINK, Backend.TCX):
            pins.update_link(hook_dir, new_prog_fd, old_prog_fd)
        elif backend is Backend.XDP_NETLINK:
            with pins.opened(hook_dir / pins.PROG) as pinned:
                expected = pinned if old_prog_fd is None else old_prog_fd
                xdp.replace_netlink(ifindex, new_prog_fd, hook_dir, expected_fd=expected)
        else:
            _replace_filter(ifindex, hook, new_prog_fd, hook_dir, old_prog_fd)
    except OSError as e:  # the kernel's (BpfError, RtnlError) or bpffs' (the new pin's rename)
        raise AttachError(f"{_where(ifindex, hook)}: replacing failed: {e}") from e
    return _ours(ifindex, hook, root)


def detach(ifindex: int, hook: Hook, root: StateRoot) -> bool:
    """Remove bpfunits' program from the hook; False if it held nothing there. If ours was
    already removed or replaced by someone else, only our pin goes."""
    hook = Hook(hook)
    backend = held_by(ifindex, hook, root)
    hook_dir = root.hook_path(ifindex, hook)
    try:
        if backend is None:
            return False
        if backend in (Backend.XDP_LINK, Backend.TCX):
            pins.detach_link(hook_dir)
        elif backend is Backend.XDP_NETLINK:
            if xdp.state(ifindex).prog_id == pins.prog_id(hook_dir):
                xdp.detach_netlink(ifindex, hook_dir)
            else:
                (hook_dir / pins.PROG).unlink()
        else:
            slot = _our_slot(ifindex, hook, hook_dir)
            if slot is not None:
                clsbpf.remove(ifindex, hook, hook_dir, slot)
            else:
                (hook_dir / pins.PROG).unlink()
    except OSError as e:  # the kernel's (BpfError, RtnlError) or bpffs' (unpinning)
        raise AttachError(f"{_where(ifindex, hook)}: detaching failed: {e}") from e
    _prune(hook_dir)
    return True


def adopt(ifindex: int, hook: Hook, program: Attached, root: StateRoot) -> None:
    """Pin a program of ours that its hook folder does not pin (observe's `adopt`) there, and
    drop the pin the layout before namespaced folders kept for it."""
    hook = Hook(hook)
    name = pins.PROG if program.link_id is None else pins.LINK
    try:
        if program.link_id is None:
            fd = bpf.prog_get_fd_by_id(program.prog_id)
        else:
            fd = bpf.link_get_fd_by_id(program.link_id)
        try:
            pins.pin(fd, root.hook_dir(ifindex, hook) / name)
        finally:
            os.close(fd)
    except (bpf.BpfError, OSError) as e:
        raise AttachError(f"{_where(ifindex, hook)}: pinning bpfunits' own program {program.prog_id} "
                          f"found without its pin failed: {e}") from e
    legacy = root.legacy_hook_path(ifindex, hook)
    if program.link_id is None:
        was_legacy = pins.prog_id(legacy) == program.prog_id
    else:
        was_legacy = getattr(pins.link_info(legacy), "id", None) == program.link_id
    if was_legacy:  # else that folder may be another namespace's, from before
        remove_tree(legacy / name)
        _prune(legacy)


def _prune(hook_dir: Path) -> None:
    """Remove the hook folder, and its interface folder, once they are empty."""
    for folder in (hook_dir, hook_dir.parent):
        try:
            folder.rmdir()
        except OSError:  # not empty: something else is still pinned there
            return
