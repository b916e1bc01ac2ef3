"""Reading the daemon's HTTP listener (metrics and health) in tests."""

from __future__ import annotations

import urllib.error
import urllib.request


def get(address: str, path: str) -> tuple[int, str]:
    """The status and body of GET http://address/path, errors included."""
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
