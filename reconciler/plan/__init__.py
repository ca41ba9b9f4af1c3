"""Plan: desired x observed x tracked x now -> ordered actions (pure; design.md §4 and §5)."""

from reconciler.plan.actions import DESTRUCTIVE, PASSIVE, Action, ActionKind
from reconciler.plan.diff import FieldChange, field_diff
from reconciler.plan.effects import apply_effects
from reconciler.plan.planner import PlanOptions, changes, plan, same_hash
from reconciler.plan.report import summary, to_json, to_text
from reconciler.plan.state import (
    DONE_STATUSES,
    LIVE_STATUSES,
    TrackedRun,
    TrackedSchedule,
    TrackedState,
    TrackedSubscription,
)
from reconciler.plan.ticks import next_ticks

__all__ = [
    "DESTRUCTIVE",
    "DONE_STATUSES",
    "LIVE_STATUSES",
    "PASSIVE",
    "Action",
    "ActionKind",
    "FieldChange",
    "PlanOptions",
    "TrackedRun",
    "TrackedSchedule",
    "TrackedState",
    "TrackedSubscription",
    "apply_effects",
    "changes",
    "field_diff",
    "next_ticks",
    "plan",
    "same_hash",
    "summary",
    "to_json",
    "to_text",
]
