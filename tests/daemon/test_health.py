"""Liveness and readiness: the loop's heartbeat, and what /healthz and /readyz answer."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from bpfunits.daemon import loop
from bpfunits.metrics.health import RECONCILE_MAX, STALE_AFTER, Health
from bpfunits.metrics.listen import Listener, ListenError, parse
from tests.http import get
from tests.daemon.harness import Recorder, running


def test_the_loop_beats_while_it_waits_for_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "HEARTBEAT_PERIOD", 0.05)
    beats: list[float] = []
    with running(Recorder(), [tmp_path], heartbeat=beats.append, resync_period=3600.0):
        time.sleep(0.5)
    assert len(beats) >= 5 and beats == sorted(beats), beats


def test_healthz_and_readyz_follow_the_loop_and_the_first_reconcile():
    health = Health()
    listener = Listener("127.0.0.1:0", CollectorRegistry(), health)
    try:
        address = listener.address
        assert get(address, "/healthz")[0] == 200
        assert get(address, "/readyz") == (503, "failing: the first reconcile is running\n")
        now = time.monotonic()
        health.reconcile_started(now)
        health.reconcile_ended(now, finished=False)
        assert get(address, "/readyz")[0] == 503, "a reconcile that raised makes no ready daemon"
        health.reconcile_ended(now, finished=True)
        assert get(address, "/readyz") == (200, "ok: the first reconcile finished\n")

        health.turn(now - STALE_AFTER - 1)
        status, text = get(address, "/healthz")
        assert status == 503 and "the event loop has not turned for" in text
        health.reconcile_started(now - 10)
        assert get(address, "/healthz")[0] == 200, "a long reconcile is no hang"
        health.reconcile_started(now - RECONCILE_MAX - 1)
        assert "a reconcile has been running for" in get(address, "/healthz")[1]
        health.reconcile_ended(time.monotonic(), finished=True)
        assert get(address, "/healthz")[0] == 200
        assert get(address, "/metrics")[0] == 200 and get(address, "/other")[0] == 404
    finally:
        listener.close()


def test_addresses():
    assert parse("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse("[::1]:9464") == ("::1", 9464)
    assert parse("node.example:1") == ("node.example", 1)
    for wrong in ("9464", ":9464", "host:", "host:port", "host:70000"):
        with pytest.raises(ListenError, match="not HOST:PORT"):
            parse(wrong)


def test_ipv6_listener():
    listener = Listener("[::1]:0", CollectorRegistry(), Health())
    try:
        assert listener.address.startswith("[::1]:") and get(listener.address, "/healthz")[0] == 200
    finally:
        listener.close()
