"""A reconcile's result as log records: one per decision, saying what changed and why."""

from __future__ import annotations

import logging
import time

from bpfunits.reconcile.engine import HookResult, Outcome, Result


def describe(hook: HookResult) -> str:
    plan = hook.plan
    parts = [f"{mark} {name}" for mark, names in (("+", plan.added), ("-", plan.removed), ("~", plan.moved),
                                                  ("*", plan.changed)) for name in names]
    why = "; ".join(plan.reasons + tuple(e for e in hook.errors if e not in plan.reasons))
    # "replace applied", "attach failed"; a blocked plan is blocked once, not "blocked blocked".
    said = (plan.action.value,) if plan.action.value == hook.outcome.value else (plan.action.value, hook.outcome.value)
    text = f"{hook.key}: {' '.join(said)}"
    if parts:
        text += f" ({', '.join(parts)})"
    if why:
        text += f": {why}"
    if hook.uncarried:
        text += f" (warning: {hook.uncarried})"
    return text


def log_result(log: logging.Logger, result: Result, trigger: str) -> None:
    for d in result.diagnostics:
        log.warning(str(d), extra={"fields": {"trigger": trigger, **d.to_json()}})
    for hook in result.hooks:
        if hook.outcome is Outcome.UNCHANGED:
            continue
        if hook.outcome in (Outcome.BLOCKED, Outcome.FAILED):
            level = logging.ERROR
        else:
            level = logging.WARNING if hook.uncarried else logging.INFO
        fields = {"trigger": trigger, "interface": hook.key.interface, "hook": hook.key.hook.value,
                  "action": hook.plan.action.value, "outcome": hook.outcome.value, "prog_id": hook.prog_id}
        if hook.uncarried:
            fields["warning"] = hook.uncarried
        text = describe(hook)
        retry = result.retries.get(hook.key)
        if retry is not None:
            wait = max(0.0, retry.at - time.monotonic())
            times = f"{retry.failures} time{'s' if retry.failures > 1 else ''}"
            text += f" (failed {times} in a row; next try in {wait:.0f} s)"
            fields.update(failures=retry.failures, retry_in=round(wait, 1))
        log.log(level, text, extra={"fields": fields})
    for e in result.events:
        if e.outcome == "unchanged":
            continue
        level = logging.ERROR if e.outcome in ("blocked", "failed") else logging.INFO
        said = e.action if e.action == e.outcome else f"{e.action} {e.outcome}"
        why = "; ".join(e.reasons + e.errors)
        log.log(level, f"{e.hook} {e.unit}: {said}" + (f": {why}" if why else ""),
                extra={"fields": {"trigger": trigger, "unit": e.unit, "hook": e.hook, "action": e.action,
                                  "outcome": e.outcome, "prog_id": e.prog_id, "link_id": e.link_id}})
    unchanged = sum(h.outcome is Outcome.UNCHANGED for h in result.hooks)
    log.info(f"reconcile ({trigger}): {len(result.hooks)} hooks, {unchanged} unchanged, "
             f"{result.ordered} interfaces ordered",
             extra={"fields": {"trigger": trigger, "hooks": len(result.hooks), "unchanged": unchanged,
                               "ordered": result.ordered}})


def summary(result: Result) -> str:
    """A one-line status for sd_notify's STATUS=: the whole node, not only the hooks this
    reconcile looked at."""
    text = f"{result.total} hooks, {len(result.retries)} with errors"
    if result.retries:
        wait = max(0.0, min(r.at for r in result.retries.values()) - time.monotonic())
        text += f", next retry in {wait:.0f} s"
    return text
