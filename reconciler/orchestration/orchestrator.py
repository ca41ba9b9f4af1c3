"""The orchestration adapter: schedules, subscriptions, DAGs, matrices and hooks over the tracking DB.

`scheduling/` decides (pure functions of rows and `now`); this applies the decisions to the
tracking DB, each in the transaction that makes it exactly-once (a claimed tick with its run, a
consumed transition with its run, a parent's step with its children), and returns the `Work` the
daemon must do outside the DB: submit new runs, record derived statuses, stop runs. It never calls
a backend.

How the daemon drives it:
- after applying a plan: `sync(actions, desired, now)`; the planner's `TrackedState` schedules and
  subscriptions come from `tracked(repo)`;
- when the timer (or `next_wakeup()`) says so: `due(now)`;
- for a CREATE whose run `is_container` (a DAG, or an op with a matrix): `start(run, now)` instead
  of submitting it;
- after recording any transition (including the `StatusUpdate`s returned here):
  `on_transition(transition, now)`;
- at start-up and now and then: `resume(now)`, which re-drives whatever a crash interrupted
  (unsubmitted runs, unconsumed transitions, containers that missed a step).
Applying `Work`: submit each `new_runs` request (already recorded; submission must be idempotent by
run name, as backends are: 409 means adopt), record each `updates` status then call `on_transition`
with it, stop each of `stops`, log `notices`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import select

from reconciler.model import DesiredState, OpKey, RunRequest, StatusTransition
from reconciler.orchestration import events, hooks, records, registry, ticking, tree
from reconciler.orchestration.specs import ScheduleOptions, container_of, default_options
from reconciler.orchestration.timer import Timer
from reconciler.orchestration.work import NewRun, Work
from reconciler.plan.actions import Action
from reconciler.plan.state import TrackedSchedule, TrackedSubscription
from reconciler.scheduling.lifecycle import FINAL, is_final
from reconciler.statuses import Status
from reconciler.tracking import Store
from reconciler.tracking.errors import NotFound
from reconciler.tracking.tables import Operation, OrchestratedRun, Run, ScheduleState

_NOT_SUBMITTED = (Status.CREATED, Status.ON_SCHEDULE)


def _no_outputs(run: str) -> Mapping[str, Any]:
    return {}


class Orchestrator:
    def __init__(
        self,
        store: Store,
        *,
        backend_name: str,
        options_for: Callable[[OpKey], ScheduleOptions] = default_options,
        outputs_of: Callable[[str], Mapping[str, Any]] = _no_outputs,
        resolve_hub: Callable[[OpKey, str], dict[str, Any] | None] | None = None,
        timer: Timer | None = None,
    ) -> None:
        self.ctx = tree.Context(store, backend_name, options_for, outputs_of, resolve_hub)
        self.timer = timer

    # -- schedules and subscriptions -------------------------------------------------------

    def sync(self, actions: Sequence[Action], desired: DesiredState, now: dt.datetime) -> Work:
        """Persist the plan's schedule and subscription actions; returns notices only."""
        work, wakeups = registry.sync(self.ctx, actions, desired, now)
        self._rearm(wakeups)
        return work

    def tracked(self, repo: str) -> tuple[dict[OpKey, TrackedSchedule], dict[OpKey, TrackedSubscription]]:
        return registry.tracked(self.ctx, repo)

    def due(self, now: dt.datetime) -> Work:
        work, wakeups = ticking.due(self.ctx, now)
        self._rearm(wakeups)
        return work

    def next_wakeup(self) -> dt.datetime | None:
        return ticking.next_wakeup(self.ctx)

    def arm_timer(self) -> None:
        """Give the timer every schedule's next wake-up (at start-up: the DB is the truth)."""
        if self.timer is None:
            return
        st, o = records.table(ScheduleState).c, records.table(Operation).c
        with records.read(self.ctx.store) as s:
            rows = s.execute(
                select(o.op_key, st.next_tick_at).join_from(
                    records.table(ScheduleState), records.table(Operation), st.operation_id == o.id
                )
            ).all()
        for key, when in rows:
            self.timer.reschedule(str(key), when)

    def _rearm(self, wakeups: Mapping[OpKey, dt.datetime | None]) -> None:
        if self.timer is not None:
            for key, when in wakeups.items():
                self.timer.reschedule(key, when)

    # -- containers, events, hooks -----------------------------------------------------------

    @staticmethod
    def is_container(run: RunRequest) -> bool:
        """A DAG or an op with a matrix: `start` expands it; no backend runs it."""
        return container_of(run.effective) is not None

    def start(self, run: RunRequest, now: dt.datetime) -> Work:
        """Expand a recorded container run into its first children (idempotent)."""
        container = container_of(run.effective)
        if container is None:
            raise ValueError(f"run {run.name} is a {run.kind} without a matrix: submit it to a backend")
        with self.ctx.store.unit_of_work() as s:
            found = records.run_by_name(s, run.name, lock=True)
            if found is None:
                raise NotFound(f"run {run.name!r} is not tracked: create it before starting it")
            return tree.begin(self.ctx, s, found, run, container, now)

    def on_transition(self, transition: StatusTransition, now: dt.datetime) -> Work:
        """What a recorded transition causes: subscribed runs, the parent's next step, hooks."""
        with records.read(self.ctx.store) as s:
            run = records.run_by_name(s, transition.run)
            if run is None or run.id is None:
                return Work()
            row = records.orchestrated(s, run.id)
            operation_id, parent = run.operation_id, run.parent
        work = events.fire_pending(self.ctx, operation_id, now)
        if is_final(transition.status):
            if row is not None and row.container is not None:
                work += Work(stops=tree.active_children(self.ctx, transition.run))
            if parent is not None:
                work += tree.advance_parent(self.ctx, parent, now)
            work += hooks.fire_hooks(self.ctx, transition.run, transition.status, now)
        return work

    def resume(self, now: dt.datetime) -> Work:
        """Re-drive what a crash may have interrupted; safe to call at any time."""
        r, o = records.table(Run).c, records.table(OrchestratedRun).c
        with records.read(self.ctx.store) as s:
            unsubmitted = s.execute(
                select(Run, OrchestratedRun)
                .join(OrchestratedRun, o.run_id == r.id)
                .where(o.container.is_(None), r.status.in_([str(x) for x in _NOT_SUBMITTED]))
                .order_by(r.id)
            ).all()
            work = Work(
                new_runs=tuple(
                    NewRun(records.request_of(s, run, row), str(run.status), run.parent) for run, row in unsubmitted
                )
            )
            containers = (
                s.execute(
                    select(r.name)
                    .join(OrchestratedRun, o.run_id == r.id)
                    .where(o.container.is_not(None), r.status.not_in(sorted(FINAL)))
                    .order_by(r.id)
                )
                .scalars()
                .all()
            )
        work += events.fire_pending(self.ctx, None, now)
        for name in containers:
            work += tree.advance_parent(self.ctx, str(name), now)
        return work


__all__ = ["Orchestrator"]
