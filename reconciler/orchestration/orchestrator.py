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

from reconciler.model import DesiredState, OpKey, RunRequest, StatusTransition
from reconciler.orchestration import events, hooks, registry, ticking, tree
from reconciler.orchestration.specs import RecordRun, ScheduleOptions, container_of, default_options
from reconciler.orchestration.timer import Timer
from reconciler.orchestration.work import NewRun, Work
from reconciler.plan.actions import Action
from reconciler.plan.state import TrackedSchedule, TrackedSubscription
from reconciler.statuses import is_done
from reconciler.tracking import NotFound, Store


def _no_outputs(run: str) -> Mapping[str, Any]:
    return {}


class Orchestrator:
    def __init__(
        self,
        store: Store,
        *,
        record: RecordRun,
        options_for: Callable[[OpKey], ScheduleOptions] = default_options,
        outputs_of: Callable[[str], Mapping[str, Any]] = _no_outputs,
        resolve_hub: Callable[[OpKey, str, Mapping[str, Any]], dict[str, Any] | None] | None = None,
        timer: Timer | None = None,
    ) -> None:
        self.ctx = tree.Context(store, record, options_for, outputs_of, resolve_hub)
        self.timer = timer

    # -- schedules and subscriptions -------------------------------------------------------

    def sync(self, actions: Sequence[Action], desired: DesiredState, now: dt.datetime) -> Work:
        """Persist the plan's schedule and subscription actions; returns notices only."""
        work, wakeups = registry.sync(self.ctx, actions, desired, now)
        self._rearm(wakeups)
        return work

    def tracked(self, repo: str) -> tuple[dict[OpKey, TrackedSchedule], dict[OpKey, TrackedSubscription]]:
        return registry.tracked(self.ctx.store, repo)

    def due(self, now: dt.datetime, owns: Callable[[str], bool] | None = None) -> Work:
        """Fire what is due; `owns(repo)` limits it to the repos this replica owns (sharding)."""
        work, wakeups = ticking.due(self.ctx, now, owns)
        self._rearm(wakeups)
        return work

    def next_wakeup(self) -> dt.datetime | None:
        return ticking.next_wakeup(self.ctx)

    def arm_timer(self) -> None:
        """Give the timer every schedule's next wake-up (at start-up: the DB is the truth)."""
        if self.timer is None:
            return
        for key, when in self.ctx.store.wakeups():
            self.timer.reschedule(key, when)

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
            found = self.ctx.store.lock_run(run.name, s)
            if found is None:
                raise NotFound(f"run {run.name!r} is not tracked: create it before starting it")
            return tree.begin(self.ctx, s, found, run, container, now)

    def on_transition(self, transition: StatusTransition, now: dt.datetime) -> Work:
        """What a recorded transition causes: subscribed runs, the parent's next step, hooks."""
        run = self.ctx.store.run(transition.run)
        if run is None or run.id is None:
            return Work()
        row = self.ctx.store.run_detail(run.id)
        operation_id, parent = run.operation_id, run.parent
        work = events.fire_pending(self.ctx, operation_id, now)
        if is_done(transition.status):
            if row is not None and row.container is not None:
                work += Work(stops=tree.active_children(self.ctx, transition.run))
            if parent is not None:
                work += tree.advance_parent(self.ctx, parent, now)
            work += hooks.fire_hooks(self.ctx, transition.run, transition.status, now)
        return work

    def on_report(self, run_name: str, now: dt.datetime) -> Work:
        """What a run's reported values cause: its parent's per-run stopping policy may stop it
        (a `metric_early_stopping` with a `policy`, judged on the siblings' values)."""
        return tree.judge_child(self.ctx, run_name, now)

    def resume(self, now: dt.datetime, owns: Callable[[str], bool] | None = None) -> Work:
        """Re-drive what a crash may have interrupted; safe to call at any time.

        Runs recorded but never submitted come back as `new_runs` (submission is idempotent by
        name), unconsumed transitions fire their subscriptions, and containers take the step a
        child's transition may have missed. `owns(repo)` limits it to the repos this replica
        owns (sharding)."""
        store = self.ctx.store
        unsubmitted = [(store.request_of(run), run) for run in store.unsubmitted_runs()]
        work = Work(
            new_runs=tuple(
                NewRun(request, str(run.status), run.parent)
                for request, run in unsubmitted
                if owns is None or owns(request.op.repo)
            )
        )
        work += events.fire_pending(self.ctx, None, now, owns)
        containers = store.unsettled_containers()
        repos = store.repos_of_runs(containers) if owns is not None else {}
        for name in containers:
            if owns is None or owns(repos.get(name, "")):
                work += tree.advance_parent(self.ctx, name, now)
        return work


__all__ = ["Orchestrator"]
