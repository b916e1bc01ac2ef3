"""The sd_notify protocol: datagrams of NAME=value lines to the socket in $NOTIFY_SOCKET.

Written here rather than imported because it is a dozen lines and the daemon needs no more.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from bpfunits.errors import BpfUnitsError


class NotifyError(BpfUnitsError):
    pass


class Notifier:
    """Talks to the service manager at `address` (a path, or "@name" for an abstract socket)."""

    def __init__(self, address: str, watchdog_interval: float | None = None) -> None:
        self.address = address
        # How often WATCHDOG=1 is due (half of WATCHDOG_USEC, as sd_watchdog_enabled advises).
        self.watchdog_interval = watchdog_interval
        # One socket, made now: a socket keeps the network namespace it was made in, and abstract
        # addresses are per namespace, so entering another one later (--netns) must not change
        # where notifications go.
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def close(self) -> None:
        self._sock.close()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Notifier | None:
        """The notifier systemd asked for, or None when not started with NOTIFY_SOCKET."""
        address = environ.get("NOTIFY_SOCKET")
        if not address:
            return None
        return cls(address, _watchdog_interval(environ))

    def send(self, *assignments: str) -> None:
        """Send lines such as "READY=1" and "STATUS=..." in one datagram."""
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        message = "\n".join(assignments).encode()
        try:
            self._sock.sendto(message, target)
        except OSError as e:
            raise NotifyError(f"sd_notify to {self.address}: {e.strerror or e}") from e


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    # WATCHDOG_PID names the process the watchdog is meant for; a child that inherited it is not.
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 / 2 if value > 0 else None
