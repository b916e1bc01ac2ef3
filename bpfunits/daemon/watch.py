"""Watching unit folders with watchdog (inotify).

A folder is watched as a whole, recursively, not file by file: editors replace files by
renaming, and a Kubernetes ConfigMap volume swaps its `..data` symlink, so watching a file
would lose it at the first update. A folder that does not exist yet is watched through its
nearest existing ancestor until it appears, so creating /etc/bpfunits.d later is noticed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from bpfunits.daemon.trigger import Trigger

# Events that mean content changed. Not opened/closed-without-write/attrib: the reconcile
# itself reads the units, and must not trigger the next one. Not directory-modified: it only
# repeats a child's event, and would let an ignored temp file through.
_CHANGES: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent, FileClosedEvent,
    DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
]

# vim swap files (.foo.swp, .swo, ..., .swx) and its write test file 4913, backups (foo~),
# emacs lock (.#foo) and autosave (#foo#) files.
_EDITOR_TEMP = re.compile(r"\..*\.sw[a-px]|.*~|4913|\.#.*|#.*#")


def is_editor_temp(name: str) -> bool:
    """Whether a file name is an editor's scratch file, whose changes say nothing about units."""
    return _EDITOR_TEMP.fullmatch(name) is not None


def nearest_existing(path: Path) -> Path:
    """`path` itself if it is a folder, else its closest ancestor that is one."""
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


class FolderWatch(FileSystemEventHandler):
    """Calls `emit` with a "files" trigger when anything that matters changes in `folder`.

    A change on the way to the folder (it, or a missing parent, created, removed or renamed)
    is reported as a change of the folder itself; the owner then calls rearm() before acting
    on it, so the watch follows. rearm() runs in the owner's thread only: watchdog calls
    dispatch() holding its own lock, and a rearm from there would invert the lock order.
    """

    def __init__(self, folder: Path, emit: Callable[[Trigger], None], log: logging.Logger) -> None:
        self.folder = Path(os.path.abspath(folder))
        self._emit = emit
        self._log = log
        self._observer = Observer()
        self._watch: ObservedWatch | None = None
        # (anchor, its real path): the folder or its nearest existing ancestor, and where its
        # symlinks lead. inotify follows a symlink only when asked by that path, and watchdog
        # reports events under the path it was given, so events are mapped back. One tuple,
        # replaced whole, because dispatch() reads it from the observer's thread.
        self._where: tuple[Path, Path] | None = None

    def start(self) -> None:
        self._observer.start()
        self.rearm()

    def close(self) -> None:
        self._observer.stop()
        self._observer.join()

    def rearm(self) -> bool:
        """Watch the folder, or its nearest existing ancestor, where it is now; True when the
        watch moved."""
        moved = False
        # Loop: a deeper level may appear while the watch on its parent is being set up.
        while self._where != (where := _locate(self.folder)):
            if self._watch is not None:
                self._observer.unschedule(self._watch)
                self._watch, self._where = None, None
            anchor, real = where
            try:
                self._watch = self._observer.schedule(
                    self, str(real), recursive=anchor == self.folder, event_filter=_CHANGES
                )
            except FileNotFoundError:
                continue  # it went away between the look and the watch: look again
            self._where = where
            moved = True
            missing = "" if anchor == self.folder else f" (missing; watching {anchor} until it appears)"
            self._log.info("watching %s%s", self.folder, missing)
        return moved

    def _logical(self, raw: bytes | str) -> Path:
        """An event's path as seen through `folder` rather than where symlinks lead."""
        path = Path(os.fsdecode(raw))
        where = self._where
        if where is None:
            return path
        anchor, real = where
        if path == real or real in path.parents:
            return anchor / path.relative_to(real)
        return path

    def dispatch(self, event: FileSystemEvent) -> None:
        paths = [self._logical(event.src_path)]
        if event.dest_path:
            paths.insert(0, self._logical(event.dest_path))
        if any(p == self.folder or p in self.folder.parents for p in paths):
            self._emit(Trigger("files", str(self.folder)))
            return
        changed = [p for p in paths if self.folder in p.parents and not is_editor_temp(p.name)]
        if changed:
            self._emit(Trigger("files", str(changed[0].relative_to(self.folder))))


def _locate(folder: Path) -> tuple[Path, Path]:
    anchor = nearest_existing(folder)
    return anchor, anchor.resolve()
