"""A unit's pinned maps: reused by every load, replaced only once a chain using the new ones runs.

A load (for plan as for apply) reuses a pinned map of the same shape and pins nothing. A map with
no pin yet, or whose pin has another shape, stays unpinned until `commit`, which apply calls after
the hook's new chain is attached: a failed load or swap leaves the old pin, which is the map the
running chain still uses, and `plan` changes no pin at all.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bpfunits.errors import BpfUnitsError
from bpfunits.load.program import MapRef
from bpfunits.state import pins
from bpfunits.sys import bpf
from bpfunits.pinname import folder_name
from bpfunits.state.bpffs import StateRoot

_SHAPE = ("type", "key_size", "value_size", "max_entries", "flags")


class MapPinError(BpfUnitsError):
    pass


def holds_state(map_name: str) -> bool:
    """Whether a map keeps state worth pinning: read-only data comes from the object itself."""
    return ".rodata" not in map_name and not map_name.endswith(".kconfig")


def pinned(path: Path) -> bpf.MapInfo | None:
    """The map pinned at `path`, None if nothing is."""
    try:
        fd = bpf.obj_get(str(path))
    except bpf.BpfError as e:
        if e.errno == errno.ENOENT:
            return None
        raise MapPinError(f"map pin {path}: {e}") from e
    try:
        return bpf.map_info(fd)
    finally:
        os.close(fd)


def reusable(path: Path, shape: tuple[int, ...]) -> bool:
    """Whether a map of this shape is pinned at `path`, for a load to reuse."""
    info = pinned(path)
    return info is not None and info.shape == shape


def reusable_pin(pin_root: Path, map_name: str, shape: tuple[int, ...], pin_path: str | None = None) -> Path | None:
    """The pin an earlier load of the unit left for map `map_name` (under `pin_root`, or at the
    `pin_path` the object names), if it holds a map of this shape for this load to reuse; None
    for a new map, left unpinned until `commit`. One rule for libbpf's loads and bcc's."""
    path = Path(pin_path) if pin_path else pin_root / folder_name(map_name)
    return path if reusable(path, shape) else None


@dataclass(frozen=True)
class ShapeChange:
    """A pinned map the next commit replaces by an empty one of another shape."""

    unit: str
    map: str
    changes: tuple[tuple[str, int, int], ...]  # (field, pinned, new)

    def __str__(self) -> str:
        fields = ", ".join(f"{name} {old} -> {new}" for name, old, new in self.changes)
        return f"unit {self.unit}: map {self.map} {fields}: its entries will be reset"


def _pin_paths(root: StateRoot, unit: str, maps: Iterable[MapRef]) -> list[tuple[MapRef, Path]]:
    """Each map of the unit that holds state, with where it is pinned, in the unit's folder."""
    folder = root.unit_path(unit)
    return [(ref, folder / folder_name(ref.name)) for ref in maps if holds_state(ref.name)]


def pinned_ids(root: StateRoot, unit: str, maps: Iterable[MapRef]) -> dict[str, int | None]:
    """Per map of the unit that holds state: the id of the map pinned for it now, None if none."""
    return {ref.name: info.id if (info := pinned(path)) else None for ref, path in _pin_paths(root, unit, maps)}


def shape_changes(root: StateRoot, unit: str, maps: Iterable[MapRef]) -> tuple[ShapeChange, ...]:
    """The pinned maps of `unit` that committing these maps would replace with another shape."""
    found = []
    for ref, path in _pin_paths(root, unit, maps):
        old = pinned(path)
        if old is None or old.id == ref.id:
            continue
        new = bpf.map_info(ref.fd)
        diff = tuple((f, getattr(old, f), getattr(new, f)) for f in _SHAPE if getattr(old, f) != getattr(new, f))
        found.append(ShapeChange(unit, ref.name, diff))
    return tuple(found)


def commit(root: StateRoot, unit: str, maps: Iterable[MapRef]) -> None:
    """Pin each map of the unit that holds state, unless it is the map pinned there already; a
    pin of another map is replaced in one step (rename over it)."""
    for ref, path in _pin_paths(root, unit, maps):
        old = pinned(path)
        if old is not None and old.id == ref.id:
            continue
        try:
            pins.pin(ref.fd, root.make(path.parent) / path.name)
        except (bpf.BpfError, OSError) as e:
            raise MapPinError(f"pinning map {ref.name} at {path}: {e}") from e


def restore(root: StateRoot, unit: str, map_name: str, map_id: int) -> None:
    """Pin map `map_id`, which a running chain uses as the unit's `map_name`, where nothing is
    pinned for it, or where the pinned map has another shape (the unit's program could not bind
    it any more: an apply changing the map's shape was interrupted after its swap). A pinned map
    of the same shape stays: the chain is rebuilt with it instead. A map gone meanwhile is left."""
    path = root.unit_path(unit) / folder_name(map_name)
    old = pinned(path)
    if old is not None and old.id == map_id:
        return
    try:
        fd = bpf.map_get_fd_by_id(map_id)
    except bpf.BpfError as e:
        if e.errno == errno.ENOENT:
            return
        raise MapPinError(f"unit {unit}: map {map_name} (id {map_id}): {e}") from e
    try:
        running = bpf.map_info(fd)
        if old is not None and all(getattr(old, f) == getattr(running, f) for f in _SHAPE):
            return
        pins.pin(fd, root.make(path.parent) / path.name)
    except (bpf.BpfError, OSError) as e:
        raise MapPinError(f"unit {unit}: pinning map {map_name} at {path}: {e}") from e
    finally:
        os.close(fd)
