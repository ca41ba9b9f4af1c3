"""The state each action leaves behind once applied, as data: the contract for the applier.

The daemon's apply step must leave the cluster and the DB as `apply_effects` says; the planner's
convergence property (plan, apply, plan again -> nothing to do) is checked against this model,
and a dry run can show the state a plan leads to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from reconciler.model import LABEL_SPEC_HASH, ObservedObject, RunRequest
from reconciler.plan.actions import Action, ActionKind
from reconciler.plan.planner import adopted_run
from reconciler.plan.state import TrackedRun, TrackedSchedule, TrackedState, TrackedSubscription


def _object(run: RunRequest, status: str | None) -> ObservedObject:
    return ObservedObject(
        run=run.name,
        op_slug=run.op.slug,
        kind=run.kind,
        spec_hash=run.labels()[LABEL_SPEC_HASH],
        status=status,
        annotations=run.annotations(),
    )


def apply_effects(
    actions: Iterable[Action],
    observed: Sequence[ObservedObject],
    tracked: TrackedState,
    now: datetime,
) -> tuple[list[ObservedObject], TrackedState]:
    objects = {o.run: o for o in observed}
    runs = {r.name: r for r in tracked.runs}
    schedules = dict(tracked.schedules)
    subscriptions = dict(tracked.subscriptions)
    for a in actions:
        kind = a.action
        if kind is ActionKind.CREATE and a.run is not None:
            runs[a.run.name] = TrackedRun(
                name=a.run.name,
                op=a.op,
                kind=a.run.kind,
                spec_hash=a.run.spec_hash,
                status="created",
                created_at=now,
                cause=a.run.cause.value,
                effective=a.run.effective,
            )
            objects[a.run.name] = _object(a.run, "created")
        elif kind is ActionKind.RETRY and a.target in runs and a.run is not None:
            runs[a.target] = replace(
                runs[a.target], status="created", spec_hash=a.run.spec_hash, effective=a.run.effective
            )
            objects[a.target] = _object(a.run, "created")
        elif kind in (ActionKind.UPDATE, ActionKind.DRIFT) and a.run is not None:
            current = runs.get(a.run.name)
            if current is not None:
                runs[a.run.name] = replace(current, spec_hash=a.run.spec_hash, effective=a.run.effective)
            previous = objects.get(a.run.name)
            objects[a.run.name] = _object(a.run, previous.status if previous else "created")
        elif kind is ActionKind.DRIFT and a.target in runs:
            runs[a.target] = replace(runs[a.target], status="unknown")
        elif kind in (ActionKind.STOP, ActionKind.DELETE) and a.target is not None:
            if a.target in runs:
                runs[a.target] = replace(runs[a.target], status="stopped")
            objects.pop(a.target, None)
        elif kind is ActionKind.PRUNE and a.target is not None:
            objects.pop(a.target, None)
        elif kind is ActionKind.ADOPT and a.observed is not None:
            runs[a.observed.run] = adopted_run(a.observed, a.op, now)
        elif kind in (ActionKind.REGISTER_SCHEDULE, ActionKind.UPDATE_SCHEDULE):
            schedules[a.op] = TrackedSchedule(a.op, a.spec_hash, dict(a.schedule or {}))
        elif kind is ActionKind.REMOVE_SCHEDULE:
            schedules.pop(a.op, None)
        elif kind is ActionKind.SUBSCRIBE:
            subscriptions[a.op] = TrackedSubscription(a.op, a.spec_hash, a.events)
        elif kind is ActionKind.UNSUBSCRIBE:
            subscriptions.pop(a.op, None)
    state = TrackedState(runs=tuple(runs.values()), schedules=schedules, subscriptions=subscriptions)
    return list(objects.values()), state
