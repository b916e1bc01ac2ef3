"""Route netlink calls (pyroute2) in the calling thread's network namespace, with errors that
name what failed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from bpfunits.errors import BpfUnitsError

if TYPE_CHECKING:
    from pyroute2 import IPRoute


class RtnlError(BpfUnitsError, OSError):
    """A netlink request failed; `.errno` holds the kernel's error."""

    def __init__(self, what: str, err: int, detail: str = "") -> None:
        self.message = f"{what}: {os.strerror(err)}" + (f" ({detail})" if detail else "")
        OSError.__init__(self, err, self.message)

    def __str__(self) -> str:
        return self.message


@contextmanager
def route(what: str) -> Iterator[IPRoute]:
    """A netlink route socket opened here and now (so in this thread's namespace); a failed
    request raises RtnlError with `what` in its message. pyroute2 is imported here, when a
    change is made: importing it costs a quarter of a second, at every start of the command."""
    from pyroute2 import IPRoute  # noqa: PLC0415
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

    ipr = IPRoute(ext_ack=True)  # the kernel says why in words (extack), not only an errno
    try:
        yield ipr
    except NetlinkError as e:
        # The kernel's own words (extack), where it gave more than the errno.
        said = str(e.args[1]) if len(e.args) > 1 and e.args[1] != os.strerror(e.code) else ""
        raise RtnlError(what, e.code, said) from e
    finally:
        ipr.close()
