"""The daemon's command line refuses what would hang or spin its loop."""

from __future__ import annotations

import pytest

from bpfunits.cli import parser


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_debounce_must_be_finite_and_not_negative(value, capsys):
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["daemon", "--debounce", value])
    assert exited.value.code == 2
    assert "is not a number of seconds (finite, not negative)" in capsys.readouterr().err


def test_debounce_accepts_seconds():
    assert parser().parse_args(["daemon", "--debounce", "0.2"]).debounce == 0.2
