"""The daemon's one line per decision."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from bpfunits.hooks import Hook
from bpfunits.metrics.node import NodeMetrics
from bpfunits.order.graph import HookKey
from bpfunits.plan.model import Action, HookPlan
from bpfunits.reconcile.decisions import describe, log_result
from bpfunits.reconcile.engine import HookResult, Outcome, Result
from bpfunits.reconcile.memory import Memory

KEY = HookKey("eth9", Hook.XDP)


def test_a_decision_says_the_action_and_its_outcome_with_the_units_and_why():
    plan = HookPlan(KEY, Action.REPLACE, None, None, added=("b",), removed=("a",))
    assert describe(HookResult(plan, Outcome.APPLIED)) == "eth9 xdp: replace applied (+ b, - a)"
    failed = HookResult(plan, Outcome.FAILED, ("BPF_LINK_UPDATE: Invalid argument",))
    assert describe(failed) == "eth9 xdp: replace failed (+ b, - a): BPF_LINK_UPDATE: Invalid argument"


def test_a_blocked_hook_is_said_blocked_once():
    plan = HookPlan(KEY, Action.BLOCKED, None, None, reasons=("unit a: cycle",))
    assert describe(HookResult(plan, Outcome.BLOCKED, plan.reasons)) == "eth9 xdp: blocked: unit a: cycle"


def test_counts_not_carried_over_are_a_warning_logged_and_counted_not_a_failure(caplog):
    plan = HookPlan(KEY, Action.REPLACE, None, None, added=("b",))
    why = "counters not carried over after the swap (what the old chain counted during the swap is lost): x"
    hook = HookResult(plan, Outcome.APPLIED, uncarried=why)
    result = Result(hooks=[hook])
    assert not result.failed
    with caplog.at_level(logging.INFO):
        log_result(logging.getLogger("test"), result, "files")
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage() == f"eth9 xdp: replace applied (+ b) (warning: {why})"
    assert record.fields["warning"] == why  # type: ignore[attr-defined]

    metrics = NodeMetrics()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    for _ in range(2):
        metrics.update(result, Memory(), ())
    assert registry.get_sample_value("bpfunits_counter_carry_failures_total") == 2
