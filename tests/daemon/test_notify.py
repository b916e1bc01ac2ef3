"""sd_notify to a real datagram socket, the timer, and failing reconciles."""

from __future__ import annotations

import os
import tempfile
import time
from itertools import pairwise

import pytest

from bpfunits.daemon import Daemon, Notifier
from bpfunits.daemon.notify import NotifyError
from bpfunits.errors import BpfUnitsError
from tests.daemon.harness import Recorder, running
from tests.daemon.notifysocket import NotifySocket


@pytest.fixture
def endpoint():
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


def test_environment_without_notify_socket_means_no_notifier():
    assert Notifier.from_environment({}) is None


def test_watchdog_interval_is_half_of_watchdog_usec():
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "3000000"})
    assert notifier.address == "@x"
    assert notifier.watchdog_interval == 1.5


def test_watchdog_meant_for_another_process_is_ignored():
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_environment(env).watchdog_interval is None
    env["WATCHDOG_PID"] = str(os.getpid())
    assert Notifier.from_environment(env).watchdog_interval == 1.5


def test_send_to_an_abstract_socket(endpoint):
    Notifier(endpoint.address).send("READY=1", "STATUS=hello")
    endpoint.wait_for(lambda line: line == "STATUS=hello")
    assert endpoint.texts == ["READY=1", "STATUS=hello"]


def test_send_to_a_path_socket():
    folder = tempfile.mkdtemp(prefix="bu")
    path = os.path.join(folder, "notify")
    sock = NotifySocket(path)
    try:
        Notifier(path).send("READY=1")
        assert sock.wait_for(lambda line: line.startswith("READY")) == "READY=1"
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(folder)


def test_send_to_nobody_raises_a_message():
    with pytest.raises(NotifyError, match="sd_notify to @bu-nobody"):
        Notifier("@bu-nobody-listens-here").send("READY=1")


def test_daemon_lifecycle_messages(endpoint, tmp_path):
    recorder = Recorder()
    notifier = Notifier(endpoint.address, watchdog_interval=0.1)
    with running(recorder, [tmp_path], notify=notifier, status=lambda result: f"ok: {result}"):
        endpoint.wait_for(lambda line: line == "READY=1")
        time.sleep(0.35)
        endpoint.wait_for(lambda line: line == "WATCHDOG=1")
    endpoint.wait_for(lambda line: line == "STOPPING=1")
    texts = endpoint.texts
    assert texts[:2] == ["STATUS=ok: reconciled on start", "READY=1"]
    assert texts[-1] == "STOPPING=1"
    assert texts.count("WATCHDOG=1") >= 3


def test_no_watchdog_pings_while_a_reconcile_hangs(endpoint, tmp_path):
    recorder = Recorder(observe=lambda: time.sleep(0.6) if len(recorder.calls) == 1 else None)
    notifier = Notifier(endpoint.address, watchdog_interval=0.05)
    with running(recorder, [tmp_path], notify=notifier):
        endpoint.wait_for(lambda line: line == "WATCHDOG=1")
        (tmp_path / "foo.unit").write_text("[Unit]\n")
        recorder.wait(2)
        time.sleep(0.2)
    pings = [at for at, line in endpoint.lines if line == "WATCHDOG=1"]
    assert max(b - a for a, b in pairwise(pings)) >= 0.55


@pytest.mark.parametrize("options", [{"resync_period": 0}, {"resync_period": 1, "debounce": -1}])
def test_nonsense_periods_are_refused(tmp_path, options):
    with pytest.raises(BpfUnitsError, match="resync period must be positive"):
        Daemon(reconcile=Recorder(), folders=[tmp_path], **{"resync_period": 1, **options})


def test_timer_resyncs(tmp_path):
    recorder = Recorder()
    with running(recorder, [tmp_path], resync_period=0.3):
        assert [t.reason for t in recorder.wait(3, timeout=2.0)] == ["start", "timer", "timer"]


def test_a_failing_reconcile_does_not_stop_the_daemon(endpoint, tmp_path):
    recorder = Recorder(fail_on=lambda trigger: trigger.reason in ("start", "timer"))
    with running(recorder, [tmp_path], resync_period=0.3, notify=Notifier(endpoint.address)):
        endpoint.wait_for(lambda line: line == "READY=1")
        assert endpoint.texts[0] == "STATUS=reconcile failed: reconcile broke on start"
        recorder.wait(3, timeout=2.0)
        (tmp_path / "foo.unit").write_text("[Unit]\n")
        recorder.wait(4, timeout=2.0)
        assert "files" in [t.reason for t in recorder.triggers]
