"""The daemon's one line per decision."""

from __future__ import annotations

from bpfunits.hooks import Hook
from bpfunits.order.graph import HookKey
from bpfunits.plan.model import Action, HookPlan
from bpfunits.reconcile.decisions import describe
from bpfunits.reconcile.engine import HookResult, Outcome

KEY = HookKey("eth9", Hook.XDP)


def test_a_decision_says_the_action_and_its_outcome_with_the_units_and_why():
    plan = HookPlan(KEY, Action.REPLACE, None, None, added=("b",), removed=("a",))
    assert describe(HookResult(plan, Outcome.APPLIED)) == "eth9 xdp: replace applied (+ b, - a)"
    failed = HookResult(plan, Outcome.FAILED, ("BPF_LINK_UPDATE: Invalid argument",))
    assert describe(failed) == "eth9 xdp: replace failed (+ b, - a): BPF_LINK_UPDATE: Invalid argument"


def test_a_blocked_hook_is_said_blocked_once():
    plan = HookPlan(KEY, Action.BLOCKED, None, None, reasons=("unit a: cycle",))
    assert describe(HookResult(plan, Outcome.BLOCKED, plan.reasons)) == "eth9 xdp: blocked: unit a: cycle"
