"""Debouncing: the triggers that arrive in a burst become one reconcile once the burst is quiet."""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field

from bpfunits.daemon.trigger import Trigger

# Seconds of quiet that end a burst. Long enough to take an editor's save, a copied folder or a
# ConfigMap swap (one rename) as one change; short enough that an edit is live within ~0.1 s
# (benchmarks/control_plane.py).
DEFAULT_DEBOUNCE = 0.05
# However long a burst goes on, a batch waits at most this many debounce periods, so a steady
# stream of events (a flapping link) cannot postpone the reconcile for ever.
MAX_WAIT_PERIODS = 10
# A log line names at most this many of a batch's details.
MAX_DETAILS = 4


@dataclass
class Batch:
    """Triggers waiting for `debounce` seconds of quiet. Times are time.monotonic() values."""

    debounce: float
    _triggers: list[Trigger] = field(default_factory=list)
    _first: float = 0.0
    _last: float = 0.0

    def add(self, trigger: Trigger, now: float) -> None:
        if not self._triggers:
            self._first = now
        if trigger not in self._triggers:
            self._triggers.append(trigger)
        self._last = now

    @property
    def deadline(self) -> float | None:
        """When the batch is due, or None when it is empty."""
        if not self._triggers:
            return None
        return min(self._last + self.debounce, self._first + MAX_WAIT_PERIODS * self.debounce)

    def take(self) -> Trigger:
        """One trigger for the whole batch, and empty it: the first trigger's reason, with every
        detail (those of other reasons prefixed with their reason), making dirty what they all do."""
        reason = self._triggers[0].reason
        parts = [
            t.detail if t.reason == reason else f"{t.reason}: {t.detail}" if t.detail else t.reason
            for t in self._triggers
        ]
        changes = functools.reduce(operator.or_, (t.changes for t in self._triggers))
        self._triggers.clear()
        parts = [p for p in dict.fromkeys(parts) if p]
        if len(parts) > MAX_DETAILS:
            parts[MAX_DETAILS:] = [f"{len(parts) - MAX_DETAILS} more"]
        return Trigger(reason, ", ".join(parts), dirty=changes)

    def clear(self) -> None:
        self._triggers.clear()
