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
from reconciler.tracking import Store

# (schedules, subscriptions) the orchestration has registered for a repo.
Registrations = Callable[[str], tuple[Mapping[OpKey, Any], Mapping[OpKey, Any]]]


def tracked_state(store: Store, repo: str, registrations: Registrations | None = None) -> TrackedState:
    """The repo's top-level runs the planner decides on (each operation's newest and every active
    one, never the whole history; pull-request previews belong to their PR and are left out)."""
    runs = []
    for run, op_key in store.planner_runs(repo):
        runs.append(
            TrackedRun(
                name=run.name,
                op=OpKey.parse(op_key),
                kind=run.kind or "job",
                spec_hash=run.spec_hash,
                status=str(run.status),
                created_at=run.created_at,
                cause=str(run.cause),
                effective=run.spec,
            )
        )
    schedules: Mapping[OpKey, Any] = {}
    subscriptions: Mapping[OpKey, Any] = {}
    if registrations is not None:
        schedules, subscriptions = registrations(repo)
    return TrackedState(runs=tuple(runs), schedules=schedules, subscriptions=subscriptions)
