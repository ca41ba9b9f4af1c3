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
from reconciler.tracking import CauseKind, Store

# (schedules, subscriptions) the orchestration has registered for a repo.
Registrations = Callable[[str], tuple[Mapping[OpKey, Any], Mapping[OpKey, Any]]]


def tracked_state(store: Store, repo: str, registrations: Registrations | None = None) -> TrackedState:
    runs = []
    for run, op_key in store.list_runs(repo=repo, top_level=True):
        if run.cause_kind == CauseKind.PREVIEW:
            continue  # pull-request previews belong to their PR, not to the tracked branch
        runs.append(
            TrackedRun(
                name=run.name,
                op=OpKey.parse(op_key),
                kind=run.kind or "job",
                spec_hash=run.spec_hash,
                status=str(run.status),
                created_at=run.created_at,
                cause=str(run.cause_kind),
                effective=run.spec,
            )
        )
    runs.reverse()  # oldest first: the planner reads "the latest run" from the end
    schedules: Mapping[OpKey, Any] = {}
    subscriptions: Mapping[OpKey, Any] = {}
    if registrations is not None:
        schedules, subscriptions = registrations(repo)
    return TrackedState(runs=tuple(runs), schedules=schedules, subscriptions=subscriptions)
