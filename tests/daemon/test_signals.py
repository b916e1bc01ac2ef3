"""Signals to a real daemon process the test starts, seen through its sd_notify messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.daemon.notifysocket import NotifySocket
from tests.timing import scaled

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def daemon_process(folder: Path, **env: str) -> Iterator[tuple[subprocess.Popen, NotifySocket]]:
    endpoint = NotifySocket()
    environ = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.daemon.daemon_main", str(folder)],
        cwd=ROOT, env={**environ, "NOTIFY_SOCKET": endpoint.address, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        endpoint.wait_for(lambda line: line == "READY=1", timeout=10)
        yield proc, endpoint
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
        endpoint.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_zero_with_stopping(tmp_path, stop_signal):
    with daemon_process(tmp_path) as (proc, endpoint):
        assert endpoint.texts[:2] == ["STATUS=reconciled: start", "READY=1"]
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=scaled(5)) == 0
        endpoint.wait_for(lambda line: line == "STOPPING=1")
        assert "stopping; attached programs stay in place" in proc.stderr.read()


def test_sighup_reconciles_at_once(tmp_path):
    with daemon_process(tmp_path) as (proc, endpoint):
        proc.send_signal(signal.SIGHUP)
        endpoint.wait_for(lambda line: line == "STATUS=reconciled: SIGHUP", timeout=2)
        proc.send_signal(signal.SIGHUP)
        endpoint.wait_for(lambda _: endpoint.texts.count("STATUS=reconciled: SIGHUP") == 2, timeout=2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=scaled(5)) == 0
        assert "reconcile: SIGHUP" in proc.stderr.read()


def test_watchdog_from_the_environment(tmp_path):
    with daemon_process(tmp_path, WATCHDOG_USEC="200000") as (proc, endpoint):
        # WATCHDOG_USEC=0.2 s: a ping every 0.1 s.
        endpoint.wait_for(lambda _: endpoint.texts.count("WATCHDOG=1") >= 4, timeout=1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=scaled(5)) == 0
