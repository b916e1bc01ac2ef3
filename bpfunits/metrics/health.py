"""Liveness and readiness of the daemon, as /healthz and /readyz answer them."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

# The event loop turns at least this often (seconds) while it waits: a turn older than
# STALE_AFTER means it is stuck. A reconcile may legitimately hold it for longer (thousands of
# hooks at start), up to RECONCILE_MAX.
TURN_PERIOD = 5.0
STALE_AFTER = 30.0
RECONCILE_MAX = 900.0


@dataclass
class Health:
    """Written by the event loop's thread, read by the listener's."""

    turned: float = field(default_factory=time.monotonic)  # the loop's last turn
    reconciling_since: float | None = None
    ready: bool = False  # the first reconcile finished
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def turn(self, now: float) -> None:
        with self._lock:
            self.turned = now

    def reconcile_started(self, now: float) -> None:
        with self._lock:
            self.reconciling_since = now

    def reconcile_ended(self, now: float, finished: bool) -> None:
        """`finished`: it ran to its end (it did not raise): the daemon is ready from then on."""
        with self._lock:
            self.reconciling_since = None
            self.turned = now
            self.ready = self.ready or finished

    def alive(self, now: float) -> tuple[bool, str]:
        """Whether the loop is alive, and why (or why not)."""
        with self._lock:
            if self.reconciling_since is not None:
                busy = now - self.reconciling_since
                if busy <= RECONCILE_MAX:
                    return True, f"reconciling for {busy:.1f} s"
                return False, f"a reconcile has been running for {busy:.0f} s (more than {RECONCILE_MAX:.0f} s)"
            idle = now - self.turned
            if idle <= STALE_AFTER:
                return True, f"event loop turned {idle:.1f} s ago"
            return False, f"the event loop has not turned for {idle:.0f} s (more than {STALE_AFTER:.0f} s)"
