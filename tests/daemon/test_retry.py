"""Issue 12: the loop wakes for failed hooks' retries (a "retry" trigger at the time the
reconciler gives), merges what was waiting into a trigger that runs now, and maps each reason
to what it makes dirty."""

from __future__ import annotations

import time

from bpfunits.daemon import Trigger
from bpfunits.daemon.batch import Batch
from bpfunits.daemon.interfaces import InterfaceState, change
from bpfunits.hooks import Hook
from bpfunits.order.graph import HookKey
from bpfunits.reconcile.memory import EVERYTHING, Changes
from tests.daemon.harness import Recorder, running


def test_a_retry_trigger_comes_when_the_reconciler_says(tmp_path):
    recorder = Recorder()
    due = time.monotonic() + 0.3
    # The first reconcile leaves a hook failing, due at `due`; the retry leaves none.
    with running(recorder, [tmp_path], retry_at=lambda result: due if len(recorder.calls) == 1 else None):
        start, retry = recorder.wait(2, timeout=3)
        assert retry.reason == "retry" and time.monotonic() >= due
        assert retry.changes == Changes(), "only the due hooks, which the reconciler knows"
        assert recorder.quiet(0.5) == [start, retry], "no retry when none is due"


def test_reasons_make_dirty_what_they_touch():
    assert Trigger("start").changes == EVERYTHING and Trigger("sighup").changes == EVERYTHING
    assert Trigger("timer").changes == Changes(kernel=True, files=True)
    assert Trigger("files").changes == Changes(files=True)
    assert Trigger("retry").changes == Changes() and Changes().narrow
    appeared = change(None, InterfaceState("eth9", ()))
    assert appeared.changes == Changes(interfaces=frozenset({"eth9"}))
    renamed = change(InterfaceState("a", ()), InterfaceState("b", ()))
    assert renamed.changes == Changes(interfaces=frozenset({"a", "b"}))
    xdp = change(InterfaceState("a", ()), InterfaceState("a", (1, ((4, 7),))))
    assert xdp.changes == Changes(hooks=frozenset({HookKey("a", Hook.XDP)}))


def test_a_batch_makes_dirty_what_its_triggers_do():
    batch = Batch(0.05)
    batch.add(change(None, InterfaceState("a", ())), 0.0)
    batch.add(Trigger("files", "x.unit"), 0.01)
    batch.add(change(InterfaceState("b", ()), InterfaceState("b", (1, ((4, 7),)))), 0.02)
    taken = batch.take()
    assert taken.changes == Changes(interfaces=frozenset({"a"}), hooks=frozenset({HookKey("b", Hook.XDP)}),
                                    files=True)
