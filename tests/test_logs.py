"""Log lines: with a time of their own on a terminal or file, with a priority for the journal."""

from __future__ import annotations

import logging
import os
import re
import sys

import pytest

from bpfunits import logs


@pytest.fixture(autouse=True)
def restore_logger():
    logger = logging.getLogger("bpfunits")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def configure_into(stream, monkeypatch) -> None:
    # In the test itself: pytest sets sys.stderr again between a fixture and the test.
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure("text")


def log_two_lines() -> None:
    log = logging.getLogger("bpfunits.daemon")
    log.info("bpfu-demo0 xdp: create applied")
    log.error("first\nsecond")
    for handler in logging.getLogger("bpfunits").handlers:
        handler.flush()


def test_the_journal_gets_priorities_and_no_time(tmp_path, monkeypatch):
    path = tmp_path / "stderr"
    with path.open("w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        configure_into(stream, monkeypatch)
        log_two_lines()
    assert path.read_text().splitlines() == [
        "<6>INFO bpfunits.daemon: bpfu-demo0 xdp: create applied", "<3>ERROR bpfunits.daemon: first", "<3>second",
    ]


def test_elsewhere_lines_carry_their_time(tmp_path, monkeypatch):
    path = tmp_path / "stderr"
    with path.open("w") as stream:
        # A stream inherited from a service, but not this process's stderr.
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")
        configure_into(stream, monkeypatch)
        log_two_lines()
    first = path.read_text().splitlines()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO bpfunits\.daemon: bpfu-demo0 xdp: create applied", first)
