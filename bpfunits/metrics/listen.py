"""The listener at `metrics_listen`: /metrics (Prometheus' exposition, by prometheus_client),
/healthz and /readyz, served by threads of their own so that a scrape never waits for the event
loop, nor the loop for a scrape."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from bpfunits.errors import BpfUnitsError
from bpfunits.metrics.health import Health


PORT_MAX = 65535


class ListenError(BpfUnitsError):
    pass


def parse(address: str) -> tuple[str, int]:
    """HOST:PORT (IPv6: [ADDR]:PORT) as (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > PORT_MAX:
        raise ListenError(f"metrics_listen {address!r}: not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Scrapes and probes every few seconds are not worth a log line each."""


Start = Callable[[str, list[tuple[str, str]]], object]


class Listener:
    """Serves until close(); the address is bound in the constructor, so a wrong one fails the
    daemon's start with a clear error."""

    def __init__(self, address: str, registry: CollectorRegistry, health: Health) -> None:
        host, port = parse(address)
        self._health = health
        self._metrics = make_wsgi_app(registry)
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICSERV)[0][0]
            server_class = type("Server", (ThreadingWSGIServer,), {"address_family": family})
            self._server: WSGIServer = make_server(host, port, self._app, server_class, handler_class=_Quiet)
        except OSError as e:  # socket.gaierror included
            raise ListenError(f"metrics_listen {address!r}: cannot listen there: {e.strerror or e}") from e
        bound: tuple = self._server.server_address
        self.address = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def _app(self, environ: dict, start: Start) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            ok, why = self._health.alive(time.monotonic())
            return _text(start, ok, why)
        if path == "/readyz":
            ready = self._health.ready
            return _text(start, ready, "the first reconcile finished" if ready else "the first reconcile is running")
        if path in ("/", "/metrics"):
            return self._metrics(environ, start)
        return _text(start, False, "not found: try /metrics, /healthz or /readyz", status="404 Not Found")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _text(start: Start, ok: bool, text: str, status: str | None = None) -> list[bytes]:
    body = f"{'ok' if ok else 'failing'}: {text}\n".encode()
    start(status or ("200 OK" if ok else "503 Service Unavailable"),
          [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
