"""Unit folder watching: real files in tmp_path, a real inotify watch."""

from __future__ import annotations

import os

import pytest

from bpfunits.daemon.watch import is_editor_temp
from tests.configmap import configmap_volume
from tests.daemon.harness import Recorder, running

SETTLE = 0.8  # comfortably more than the debounce (and its at most 10 periods in a burst)


@pytest.mark.parametrize("name", [".foo.unit.swp", ".foo.unit.swx", "foo.unit~", "4913", ".#foo.unit", "#foo.unit#"])
def test_editor_temp_names(name):
    assert is_editor_temp(name)


@pytest.mark.parametrize("name", ["foo.unit", "..data", "..2026_11_22_04_00_00.123", "foo.unit.d", "override.conf"])
def test_real_names(name):
    assert not is_editor_temp(name)


def test_a_burst_of_writes_is_one_reconcile(tmp_path):
    recorder = Recorder()
    with running(recorder, [tmp_path]):
        for i in range(20):
            (tmp_path / f"u{i % 3}.unit").write_text(f"[Unit]\nDescription={i}\n")
        recorder.wait(2)
        recorder.quiet(SETTLE)
        assert [t.reason for t in recorder.triggers] == ["start", "files"]


def test_editor_temp_files_alone_do_not_reconcile(tmp_path):
    recorder = Recorder()
    with running(recorder, [tmp_path]):
        for name in (".foo.unit.swp", "foo.unit~", "4913", ".#foo.unit"):
            (tmp_path / name).write_text("scratch")
            (tmp_path / name).unlink()
        assert len(recorder.quiet(SETTLE)) == 1


def test_reading_units_does_not_reconcile(tmp_path):
    (tmp_path / "foo.unit").write_text("[Unit]\n")
    recorder = Recorder(observe=(tmp_path / "foo.unit").read_text)
    with running(recorder, [tmp_path]):
        (tmp_path / "foo.unit").read_text()
        assert len(recorder.quiet(SETTLE)) == 1


def test_atomic_rename_is_one_reconcile(tmp_path):
    (tmp_path / "foo.unit").write_text("old")
    recorder = Recorder(observe=(tmp_path / "foo.unit").read_text)
    with running(recorder, [tmp_path]):
        tmp = tmp_path / ".foo.unit.tmp1234"
        tmp.write_text("new")
        os.replace(tmp, tmp_path / "foo.unit")
        recorder.wait(2)
        recorder.quiet(SETTLE)
        assert [(t.reason, seen) for t, seen in recorder.calls] == [("start", "old"), ("files", "new")]


def test_configmap_data_swap_reconciles_with_new_content(tmp_path):
    configmap_volume(tmp_path, "04_00_00.1", {"foo.unit": "version 1"})
    recorder = Recorder(observe=(tmp_path / "foo.unit").read_text)
    with running(recorder, [tmp_path]):
        assert recorder.calls[0][1] == "version 1"
        configmap_volume(tmp_path, "04_00_00.2", {"foo.unit": "version 2"})
        trigger = recorder.wait(2)[1]
        recorder.quiet(SETTLE)
        assert trigger.reason == "files"
        assert "..data" in trigger.detail
        assert [seen for _, seen in recorder.calls] == ["version 1", "version 2"]


def test_unit_in_a_dropin_subfolder(tmp_path):
    (tmp_path / "foo.unit.d").mkdir()
    recorder = Recorder()
    with running(recorder, [tmp_path]):
        (tmp_path / "foo.unit.d" / "override.conf").write_text("[Unit]\n")
        assert recorder.wait(2)[1].detail == "foo.unit.d/override.conf"


def test_folder_created_after_start_is_watched(tmp_path):
    folder = tmp_path / "etc" / "bpfunits.d"
    recorder = Recorder()
    with running(recorder, [folder]):
        folder.mkdir(parents=True)
        recorder.wait(2)
        recorder.quiet(SETTLE)
        (folder / "foo.unit").write_text("[Unit]\n")
        triggers = recorder.wait(3)
        assert [t.reason for t in triggers] == ["start", "files", "files"]
        assert triggers[2].detail == "foo.unit"


def test_unrelated_changes_next_to_a_missing_folder_are_ignored(tmp_path):
    recorder = Recorder()
    with running(recorder, [tmp_path / "bpfunits.d"]):
        (tmp_path / "other.conf").write_text("not ours")
        (tmp_path / "other.d").mkdir()
        assert len(recorder.quiet(SETTLE)) == 1


def test_folder_removed_and_recreated(tmp_path):
    folder = tmp_path / "bpfunits.d"
    folder.mkdir()
    recorder = Recorder()
    with running(recorder, [folder]):
        folder.rmdir()
        recorder.wait(2)
        recorder.quiet(SETTLE)
        folder.mkdir()
        recorder.wait(3)
        recorder.quiet(SETTLE)
        (folder / "foo.unit").write_text("[Unit]\n")
        assert recorder.wait(4)[3].detail == "foo.unit"


def test_a_symlinked_folder_is_watched_where_it_points(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "bpfunits.d")
    recorder = Recorder()
    with running(recorder, [tmp_path / "bpfunits.d"]):
        (tmp_path / "real" / "foo.unit").write_text("[Unit]\n")
        assert recorder.wait(2)[1].detail == "foo.unit"


def test_a_retargeted_folder_symlink_is_followed_after_the_timer(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    os.symlink("one", tmp_path / "bpfunits.d")
    recorder = Recorder()
    with running(recorder, [tmp_path / "bpfunits.d"], resync_period=0.5):
        os.symlink("two", tmp_path / "new")
        os.replace(tmp_path / "new", tmp_path / "bpfunits.d")
        assert recorder.wait(2)[1].reason == "timer"
        (tmp_path / "two" / "foo.unit").write_text("[Unit]\n")
        assert recorder.wait(3)[2].detail == "foo.unit"
