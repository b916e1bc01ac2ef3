"""Attaching one unit's program to an event hook through a bpf_link, pinned in the unit's event
folder (`<root>/events/<unit>/link-<hook digest>`): the pin keeps the link, and so the
attachment, after the process exits; its name says which hook it is on. Removing the pin (and
the link's last fd) detaches it. On a kernel with cgroup mprog (6.16, and Debian's 6.12) a new cgroup link is
placed before or after another (`Place`); a cgroup link's program is swapped in place."""

from __future__ import annotations

import errno
import hashlib
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import probe
from bpfunits.hooks.events import EventHook, EventKind
from bpfunits.pinname import folder_name
from bpfunits.state import pins
from bpfunits.state.bpffs import StateRoot, children, names, remove_tree
from bpfunits.sys import bpf, elfsym, perf

EVENTS = "events"
_FEATURES = {
    EventKind.TRACEPOINT: (probe.PERF_LINK,),
    EventKind.KPROBE: (probe.KPROBE_EVENTS, probe.PERF_LINK),
    EventKind.KRETPROBE: (probe.KPROBE_EVENTS, probe.PERF_LINK),
    EventKind.UPROBE: (probe.UPROBE_EVENTS, probe.PERF_LINK),
    EventKind.URETPROBE: (probe.UPROBE_EVENTS, probe.PERF_LINK),
    EventKind.FENTRY: (probe.TRACING_PROGS,),
    EventKind.FEXIT: (probe.TRACING_PROGS,),
    EventKind.CGROUP_SKB_INGRESS: (probe.CGROUP_LINK,),
    EventKind.CGROUP_SKB_EGRESS: (probe.CGROUP_LINK,),
    EventKind.CGROUP_SOCK_CREATE: (probe.CGROUP_LINK,),
}


class EventAttachError(BpfUnitsError):
    pass


class AttachedBefore(EventAttachError):
    """A tracing program that was attached once cannot be again before Linux 5.13 (ENOENT): it
    must be loaded anew."""


def unavailable(hook: EventHook) -> str | None:
    """Why this kernel cannot run a program on `hook`, or None."""
    features = probe.features()
    for feature in _FEATURES.get(hook.kind, ()):
        if not features.has(feature):
            return f"{hook.value}: {features.missing(feature)}"
    return None


def events_path(root: StateRoot) -> Path:
    return root.path / EVENTS


def unit_events_path(root: StateRoot, unit: str) -> Path:
    return events_path(root) / folder_name(unit)


def pin_name(hook: EventHook) -> str:
    """The link's pin name: it names the hook (bpffs refuses dots, and a path may be long)."""
    return "link-" + hashlib.sha256(hook.value.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Running:
    """What bpfunits left on an event hook for a unit, as its pin shows."""

    unit: str
    pin: Path
    link_id: int
    prog_id: int


def running(root: StateRoot) -> dict[str, list[Running]]:
    """Per unit folder name under `<root>/events`, the links pinned there (normally one)."""
    found: dict[str, list[Running]] = {}
    for folder in children(events_path(root)):
        for name in names(folder):
            pin = folder / name
            try:
                with pins.opened(pin) as fd:
                    info = bpf.link_info(fd)
            except bpf.BpfError:
                continue  # not a link (a stray pin): ignored, removed with its folder
            found.setdefault(folder.name, []).append(Running(folder.name, pin, info.id, info.prog_id))
    return found


def ordered(hook: EventHook) -> bool:
    """Whether this kernel runs the programs on `hook` in an order bpfunits sets."""
    return hook.orderable and probe.features().has(probe.CGROUP_MPROG)


def _cgroup(hook: EventHook) -> int:
    try:
        return os.open(hook.target, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise EventAttachError(f"cgroup {hook.target}: {e.strerror}") from e


def query(hook: EventHook) -> bpf.Query:
    """The programs on a cgroup hook in run order (the cgroup's own, not inherited ones), and
    its revision (Linux 6.16+, else 0)."""
    fd = _cgroup(hook)
    try:
        return bpf.cgroup_query(fd, hook.expected_attach_type)
    except bpf.BpfError as e:
        raise EventAttachError(f"reading {hook.value}: {e}") from e
    finally:
        os.close(fd)


def attached(hook: EventHook, link: Running) -> bool:
    """Whether the link still runs its program where it was attached. A cgroup link someone
    detached (BPF_LINK_DETACH) stays pinned, defunct; the cgroup shows it is gone."""
    if not hook.kind.is_cgroup:
        return True
    try:
        return link.prog_id in query(hook).prog_ids
    except EventAttachError:
        return False


@dataclass(frozen=True)
class Place:
    """Where a new cgroup link goes among the programs on its hook (cgroup mprog): right
    before or after the link `link_id`, or with none, first (before) or last (after)."""

    before: bool
    link_id: int
    revision: int  # the hook's revision this was decided on: the kernel refuses (ESTALE) if it changed

    @property
    def flags(self) -> int:
        if not self.link_id:
            return bpf.BPF_F_BEFORE if self.before else 0  # no flags: appended
        return (bpf.BPF_F_BEFORE if self.before else bpf.BPF_F_AFTER) | bpf.BPF_F_LINK


def _perf_event(hook: EventHook) -> int:
    kind, target = hook.kind, hook.target
    if kind is EventKind.TRACEPOINT:
        category, _, name = target.partition("/")
        return perf.open_tracepoint(category, name)
    if kind in (EventKind.KPROBE, EventKind.KRETPROBE):
        function, _, offset = target.partition("+")
        return perf.open_probe("kprobe", function, int(offset or "0", 0), kind is EventKind.KRETPROBE)
    path, _, symbol = target.rpartition(":")
    return perf.open_probe("uprobe", path, elfsym.file_offset(path, symbol), kind is EventKind.URETPROBE)


def create(hook: EventHook, prog_fd: int, place: Place | None = None) -> int:
    """A new link running `prog_fd` on `hook` (a cgroup link where `place` says); its fd, the
    caller's to pin and close."""
    if reason := unavailable(hook):
        raise EventAttachError(reason)
    try:
        if hook.kind is EventKind.RAW_TRACEPOINT:
            return bpf.raw_tracepoint_open(hook.target, prog_fd)
        if hook.kernel_function is not None:  # on the function the program was loaded against
            try:
                return bpf.raw_tracepoint_open(None, prog_fd)
            except bpf.BpfError as e:
                if e.errno == errno.ENOENT:
                    raise AttachedBefore(f"attaching to {hook.value}: {e}") from e
                raise
        if hook.kind.is_cgroup:
            target = _cgroup(hook)
            attach_type = hook.expected_attach_type  # BPF_CGROUP_INET_INGRESS is 0
        else:
            target, attach_type = _perf_event(hook), bpf.AttachType.PERF_EVENT
        try:
            if place is None:
                return bpf.link_create(prog_fd, target, attach_type)
            return bpf.link_create(prog_fd, target, attach_type, flags=place.flags, relative_id=place.link_id,
                                   expected_revision=place.revision)
        finally:
            os.close(target)
    except (bpf.BpfError, perf.PerfError, elfsym.SymbolError) as e:
        raise EventAttachError(f"attaching to {hook.value}: {e}") from e


def attach(root: StateRoot, unit: str, hook: EventHook, prog_fd: int, place: Place | None = None) -> int:
    """Attach `prog_fd` on `hook` for `unit` and pin the link, replacing (and so detaching) one
    pinned there for the same hook in one step; returns the link's id."""
    folder = root.make(unit_events_path(root, unit))
    path = folder / pin_name(hook)
    fd = create(hook, prog_fd, place)
    try:
        link_id = bpf.link_info(fd).id
        old = pins.opened_if_pinned(path)
        try:
            pins.pin(fd, path)
            if old is not None:
                # Replaced, the old pin lets go of its link only after an RCU grace period (bpffs
                # frees inodes then): detached now where the kind of link allows (cgroup). The new
                # link runs and is pinned: a failure here must not take it down with it (the old
                # one still goes, with its last reference).
                with suppress(bpf.BpfError):
                    _detach_now(old)
        finally:
            if old is not None:
                os.close(old)
        return link_id
    except BaseException:
        with suppress(bpf.BpfError):
            bpf.link_detach(fd)
        raise
    finally:
        os.close(fd)


def _detach_now(fd: int) -> None:
    """BPF_LINK_DETACH, where the kind of link has it (perf, raw tracepoint and tracing links
    go with their last reference)."""
    try:
        bpf.link_detach(fd)
    except bpf.BpfError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOLINK):
            raise


def update(link: Running, prog_fd: int) -> None:
    """Swap the program of a pinned cgroup link in one step (BPF_LINK_UPDATE): the link keeps its
    id and its place on the hook, and no packet meets both programs or neither. Refused if the
    link no longer runs the program it ran when observed."""
    try:
        old = bpf.prog_get_fd_by_id(link.prog_id)
        try:
            with pins.opened(link.pin) as fd:
                bpf.link_update(fd, prog_fd, old_prog_fd=old)
        finally:
            os.close(old)
    except bpf.BpfError as e:
        raise EventAttachError(f"replacing the program of link {link.link_id}: {e}") from e


def detach(pin: Path) -> None:
    """Unpin a link and detach it now where the kind of link allows (a perf, raw tracepoint or
    tracing link goes with its last reference, which the pin was for bpfunits)."""
    try:
        with pins.opened(pin) as fd, pins.unpinned(fd, pin):
            _detach_now(fd)
    except bpf.BpfError as e:
        if e.errno != errno.ENOENT:
            raise


def remove_unit(root: StateRoot, unit_folder: str) -> None:
    """Detach every link of a unit folder and remove the folder."""
    folder = events_path(root) / unit_folder
    for name in names(folder):
        detach(folder / name)
    remove_tree(folder)
