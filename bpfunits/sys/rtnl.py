"""Route netlink calls (pyroute2) in the calling thread's network namespace, with errors that
name what failed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from bpfunits.errors import BpfUnitsError


class RtnlError(BpfUnitsError, OSError):
    """A netlink request failed; `.errno` holds the kernel's error."""

    def __init__(self, what: str, err: int) -> None:
        self.message = f"{what}: {os.strerror(err)}"
        OSError.__init__(self, err, self.message)

    def __str__(self) -> str:
        return self.message


@contextmanager
def route(what: str) -> Iterator[IPRoute]:
    """A netlink route socket opened here and now (so in this thread's namespace); a failed
    request raises RtnlError with `what` in its message."""
    ipr = IPRoute()
    try:
        yield ipr
    except NetlinkError as e:
        raise RtnlError(what, e.code) from e
    finally:
        ipr.close()
