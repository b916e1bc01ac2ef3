"""Debouncing, as pure logic."""

from bpfunits.daemon.batch import MAX_WAIT_PERIODS, Batch
from bpfunits.daemon.trigger import Trigger


def test_a_burst_is_due_after_quiet_and_becomes_one_trigger():
    batch = Batch(debounce=0.5)
    assert batch.deadline is None
    batch.add(Trigger("files", "a.unit"), now=10.0)
    batch.add(Trigger("files", "a.unit"), now=10.2)
    batch.add(Trigger("files", "b.unit"), now=10.4)
    assert batch.deadline == 10.9
    assert batch.take() == Trigger("files", "a.unit, b.unit")
    assert batch.deadline is None


def test_a_steady_stream_cannot_postpone_the_batch_for_ever():
    batch = Batch(debounce=0.1)
    for i in range(100):
        batch.add(Trigger("interfaces", "flap"), now=i * 0.05)
    assert batch.deadline == MAX_WAIT_PERIODS * 0.1


def test_other_reasons_are_named_in_the_detail():
    batch = Batch(debounce=0.1)
    batch.add(Trigger("files", "a.unit"), now=0)
    batch.add(Trigger("xdp", "veth0"), now=0)
    assert batch.take() == Trigger("files", "a.unit, xdp: veth0")


def test_long_details_are_shortened():
    batch = Batch(debounce=0.1)
    for i in range(10):
        batch.add(Trigger("files", f"{i}.unit"), now=0)
    assert batch.take().detail == "0.unit, 1.unit, 2.unit, 3.unit, 6 more"


def test_trigger_reads_as_a_log_phrase():
    assert str(Trigger("files", "ratelimit.unit")) == "files changed (ratelimit.unit)"
    assert str(Trigger("start")) == "start"
