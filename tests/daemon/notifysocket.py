"""A real sd_notify endpoint: a datagram socket the test binds, as systemd would."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable

from tests.timing import scaled


class NotifySocket:
    """Bound at an abstract address, "@bu-notify-<random>", unless given a path. A thread
    receives, so each line's arrival time is when it was sent, not when the test looked."""

    def __init__(self, path: str | None = None) -> None:
        self.address = path or f"@bu-notify-{secrets.token_hex(4)}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.bind("\0" + self.address[1:] if self.address.startswith("@") else self.address)
        self._sock.settimeout(0.05)
        # (arrival time, one NAME=value line) for every line received so far.
        self.lines: list[tuple[float, str]] = []
        self._arrived = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        self._thread.join()
        self._sock.close()

    def _receive(self) -> None:
        while not self._closing:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            now = time.monotonic()
            with self._arrived:
                self.lines.extend((now, line) for line in data.decode().splitlines())
                self._arrived.notify_all()

    def wait_for(self, match: Callable[[str], bool], timeout: float = 3.0) -> str:
        """Wait until a line (received before or after the call) satisfies `match`; return it."""
        found: list[str] = []

        def matched() -> bool:
            found[:] = [line for _, line in self.lines if match(line)][:1]
            return bool(found)

        with self._arrived:
            if not self._arrived.wait_for(matched, scaled(timeout)):
                raise AssertionError(f"no matching sd_notify line in {scaled(timeout)}s; got {self.texts}")
        return found[0]

    @property
    def texts(self) -> list[str]:
        with self._arrived:
            return [line for _, line in self.lines]
