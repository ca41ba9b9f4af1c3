"""A plan as text a reviewer reads (`kubectl diff` / `terraform plan` style) or as JSON.

Shared by `reconciler plan` and, later, the pull-request comment of design.md §7.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from reconciler.plan.actions import Action, ActionKind

_SIGN = {
    ActionKind.CREATE: "+ create",
    ActionKind.UPDATE: "~ update",
    ActionKind.STOP: "- stop",
    ActionKind.DELETE: "- delete",
    ActionKind.PRUNE: "- prune",
    ActionKind.REGISTER_SCHEDULE: "+ schedule",
    ActionKind.UPDATE_SCHEDULE: "~ schedule",
    ActionKind.REMOVE_SCHEDULE: "- schedule",
    ActionKind.SUBSCRIBE: "+ subscribe",
    ActionKind.UNSUBSCRIBE: "- unsubscribe",
    ActionKind.ADOPT: "= adopt",
    ActionKind.DRIFT: "~ drift",
    ActionKind.NOOP: "  noop",
}


def _line(action: Action) -> list[str]:
    if action.action is ActionKind.INVALID:
        lines = [f"! invalid {action.errors[0]}" if action.errors else f"! invalid {action.op.path}"]
        lines += [f"    {e}" for e in action.errors[1:]]
        if "keeping the last good state" in action.reason:
            lines.append(f"    {action.reason.rsplit('(', 1)[-1].rstrip(')')}")
        return lines
    kind = f" ({action.kind})" if action.kind else ""
    head = f"{_SIGN[action.action]} {action.op}{kind}"
    if action.run is not None:
        head += f" -> {action.run.name}"
    elif action.target is not None:
        head += f" [{action.target}]"
    lines = [f"{head}: {action.reason}"]
    lines += [f"    {change}" for change in action.diff]
    if action.ticks:
        lines.append("    next: " + ", ".join(t.isoformat() for t in action.ticks))
    return lines


def summary(actions: Sequence[Action]) -> str:
    counts = Counter(a.action for a in actions)
    schedules = sum(
        counts[k] for k in (ActionKind.REGISTER_SCHEDULE, ActionKind.UPDATE_SCHEDULE, ActionKind.REMOVE_SCHEDULE)
    )
    subscriptions = counts[ActionKind.SUBSCRIBE] + counts[ActionKind.UNSUBSCRIBE]
    removals = counts[ActionKind.STOP] + counts[ActionKind.DELETE] + counts[ActionKind.PRUNE]
    parts = [
        f"{counts[ActionKind.CREATE]} to create",
        f"{counts[ActionKind.UPDATE]} to update",
        f"{removals} to stop/delete/prune",
        f"{schedules} schedule change(s)",
        f"{subscriptions} subscription change(s)",
    ]
    if counts[ActionKind.ADOPT]:
        parts.append(f"{counts[ActionKind.ADOPT]} to adopt")
    if counts[ActionKind.DRIFT]:
        parts.append(f"{counts[ActionKind.DRIFT]} drifted")
    parts.append(f"{counts[ActionKind.NOOP]} unchanged")
    parts.append(f"{counts[ActionKind.INVALID]} invalid file(s)")
    return "Plan: " + ", ".join(parts) + "."


def to_text(actions: Sequence[Action], *, verbose: bool = False) -> str:
    lines: list[str] = []
    for action in actions:
        if action.action is ActionKind.NOOP and not verbose:
            continue
        lines += _line(action)
    lines.append(summary(actions))
    return "\n".join(lines)


def to_json(commit: str, actions: Sequence[Action]) -> dict[str, Any]:
    errors = [
        {"path": e.path, "line": e.line, "column": e.column, "message": e.message}
        for a in actions
        if a.action is ActionKind.INVALID
        for e in a.errors
    ]
    return {"commit": commit, "actions": [a.to_json() for a in actions], "errors": errors}
