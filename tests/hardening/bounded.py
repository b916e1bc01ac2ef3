"""A time bound for tests of hostile input: a case that hangs fails instead of stalling the suite."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Overran(AssertionError):
    pass


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail the block if it takes longer than `seconds` (a blocking read included: the signal
    interrupts it). Main thread only."""

    def expire(signum, frame):
        raise Overran(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
