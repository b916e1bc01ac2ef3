"""A reconcile's result as log records: one per decision, saying what changed and why."""

from __future__ import annotations

import logging

from bpfunits.reconcile.engine import HookResult, Outcome, Result


def describe(hook: HookResult) -> str:
    plan = hook.plan
    parts = [f"{mark} {name}" for mark, names in (("+", plan.added), ("-", plan.removed), ("~", plan.moved),
                                                  ("*", plan.changed)) for name in names]
    why = "; ".join(plan.reasons + tuple(e for e in hook.errors if e not in plan.reasons))
    text = f"{hook.key}: {plan.action.value} {hook.outcome.value}"
    if parts:
        text += f" ({', '.join(parts)})"
    if why:
        text += f": {why}"
    return text


def log_result(log: logging.Logger, result: Result, trigger: str) -> None:
    for d in result.diagnostics:
        log.warning(str(d), extra={"fields": {"trigger": trigger, **d.to_json()}})
    for hook in result.hooks:
        if hook.outcome is Outcome.UNCHANGED:
            continue
        level = logging.ERROR if hook.outcome in (Outcome.BLOCKED, Outcome.FAILED) else logging.INFO
        log.log(level, describe(hook), extra={"fields": {
            "trigger": trigger, "interface": hook.key.interface, "hook": hook.key.hook.value,
            "action": hook.plan.action.value, "outcome": hook.outcome.value, "prog_id": hook.prog_id}})
    unchanged = sum(h.outcome is Outcome.UNCHANGED for h in result.hooks)
    log.info(f"reconcile ({trigger}): {len(result.hooks)} hooks, {unchanged} unchanged",
             extra={"fields": {"trigger": trigger, "hooks": len(result.hooks), "unchanged": unchanged}})


def summary(result: Result) -> str:
    """A one-line status for sd_notify's STATUS=."""
    failed = sum(h.outcome in (Outcome.BLOCKED, Outcome.FAILED) for h in result.hooks)
    return f"{len(result.hooks)} hooks, {failed} with errors"
