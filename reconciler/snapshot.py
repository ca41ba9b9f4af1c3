"""The planner's view of the tracking database: a plain `TrackedState` for one repo.

Used by the daemon before each plan and by `reconciler plan --db`, so both plan against the same
picture of what already runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.model import OpKey
from reconciler.plan import TrackedState
from reconciler.plan.state import TrackedRun
from reconciler.spec.runs import LONG_RUNNING_KINDS
from reconciler.tracking import PlannerRun, Store

# (schedules, subscriptions) the orchestration has registered for a repo.
Registrations = Callable[[str], tuple[Mapping[OpKey, Any], Mapping[OpKey, Any]]]


def planner_rows(store: Store, repo: str) -> list[PlannerRun]:
    """The rows `tracked_state` is made of (read once per reconcile, shared with what needs them)."""
    return store.planner_runs(repo, spec_kinds=LONG_RUNNING_KINDS)


def tracked_state(
    store: Store,
    repo: str,
    registrations: Registrations | None = None,
    rows: list[PlannerRun] | None = None,
) -> TrackedState:
    """The repo's top-level runs the planner decides on (each operation's newest and every active
    one, never the whole history; pull-request previews belong to their PR and are left out)."""
    runs = []
    rows = planner_rows(store, repo) if rows is None else rows
    reasons = store.last_reasons([run.id for run in rows])
    retries = store.count_reasons([run.id for run in rows if run.status == "unschedulable"], "Retry")
    for run in rows:
        runs.append(
            TrackedRun(
                name=run.name,
                op=OpKey.parse(run.op_key),
                kind=run.kind or "job",
                spec_hash=run.spec_hash,
                status=str(run.status),
                created_at=run.created_at,
                cause=str(run.cause),
                effective=run.spec,
                cause_id=run.cause_id,
                finished_at=run.finished_at,
                reason=reasons.get(run.id),
                updated_at=run.updated_at,
                retries=retries.get(run.id, 0),
                submitted=run.backend_ref is not None,
            )
        )
    schedules: Mapping[OpKey, Any] = {}
    subscriptions: Mapping[OpKey, Any] = {}
    if registrations is not None:
        schedules, subscriptions = registrations(repo)
    return TrackedState(runs=tuple(runs), schedules=schedules, subscriptions=subscriptions)
