"""The daemon's state file, which `status` reads: failing hooks and when they are tried again,
believed only while the daemon that wrote it runs, for its own network namespace."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from bpfunits.daemon import statefile
from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.order.graph import HookKey
from bpfunits.reconcile.memory import Retry

KEY = HookKey("eth0", Hook.XDP)


def test_what_the_daemon_writes_status_reads(tmp_path):
    path = tmp_path / "run" / "state.json"
    statefile.write(path, 42, {KEY: Retry(3, time.monotonic() + 8, "kernel said no")})
    (got,) = statefile.read(path, 42, strict=False).items()
    assert got[0] == KEY and got[1].failures == 3 and got[1].error == "kernel said no"
    assert 7 < got[1].next_try - time.time() <= 8
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in path.parent.iterdir()] == ["state.json"], "no temporary file left"


def test_another_namespace_or_a_daemon_that_is_gone_shows_nothing(tmp_path):
    path = tmp_path / "state.json"
    statefile.write(path, 42, {KEY: Retry(1, time.monotonic() + 1, "x")})
    assert statefile.read(path, 43, strict=False) == {}
    gone = subprocess.Popen(["true"])
    gone.wait()
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "pid": gone.pid}))
    assert statefile.read(path, 42, strict=False) == {}
    assert statefile.read(tmp_path / "none.json", 42, strict=False) == {}


def test_a_garbled_or_untrusted_file_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(f'{{"version": 1, "netns": 42, "pid": {os.getpid()}, "retries": [{{"interface": 1}}]}}')
    with pytest.raises(BpfUnitsError, match="not a bpfunits daemon state file"):
        statefile.read(path, 42, strict=False)
    path.write_text("[]")
    with pytest.raises(BpfUnitsError, match="not a bpfunits daemon state file"):
        statefile.read(path, 42, strict=False)
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(BpfUnitsError, match="not read"):
        statefile.read(tmp_path / "fifo.json", 42, strict=False)
