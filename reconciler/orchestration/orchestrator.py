"""The orchestration adapter: schedules, subscriptions, DAGs, matrices and hooks over the tracking DB.

`scheduling/` decides (pure functions of rows and `now`); this applies the decisions to the
tracking DB, each in the transaction that makes it exactly-once (a claimed tick with its run, a
consumed transition with its run, a parent's step with its children), and returns the `Work` the
daemon must do outside the DB: submit new runs, record derived statuses, stop runs. It never calls
a backend.

How the daemon drives it:
- after applying a plan: `sync(actions, desired, now)`; the planner's `TrackedState` schedules and
  subscriptions come from `tracked(repo)`;
- when the timer (or `next_wakeup()`) says so: `due(now)`, whose `Work` comes a batch of schedules
  at a time (submit each batch's runs before asking for the next);
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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from reconciler.model import Cause, DesiredState, OpKey, RunRequest, StatusTransition
from reconciler.orchestration import events, hooks, registry, ticking, tree
from reconciler.orchestration.specs import RecordRun, RecordRuns, ScheduleOptions, container_of, default_options
from reconciler.orchestration.timer import Timer
from reconciler.orchestration.work import NewRun, Work
from reconciler.plan.actions import Action
from reconciler.plan.state import TrackedSchedule, TrackedSubscription
from reconciler.scheduling.ticks import tick_of_cause
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
        record_many: RecordRuns,
        options_for: Callable[[OpKey], ScheduleOptions] = default_options,
        outputs_of: Callable[[str], Mapping[str, Any]] = _no_outputs,
        resolve_hub: Callable[[OpKey, str, Mapping[str, Any]], dict[str, Any] | None] | None = None,
        timer: Timer | None = None,
        lead: dt.timedelta = dt.timedelta(0),
    ) -> None:
        """`lead`: how long before its tick a schedule is decided (`ticking.TICK_LEAD` in the
        daemon), its run returned with `not_before` set to the tick; the timer wakes that much
        earlier."""
        self.ctx = tree.Context(store, record, record_many, options_for, outputs_of, resolve_hub)
        self.timer = timer
        self.lead = lead

    # -- schedules and subscriptions -------------------------------------------------------

    def sync(self, actions: Sequence[Action], desired: DesiredState, now: dt.datetime) -> Work:
        """Persist the plan's schedule and subscription actions; returns notices only."""
        work, wakeups = registry.sync(self.ctx, actions, desired, now)
        self._wake_by(_earliest(wakeups.values()))
        return work

    def tracked(self, repo: str) -> tuple[dict[OpKey, TrackedSchedule], dict[OpKey, TrackedSubscription]]:
        return registry.tracked(self.ctx.store, repo)

    def due(self, now: dt.datetime, owns: Callable[[str], bool] | None = None) -> Iterator[Work]:
        """Fire what is due, a batch of schedules at a time: each batch's `Work` is yielded once
        its decisions are committed, for the daemon to apply before the next batch is decided.
        `owns(repo)` limits it to the repos this replica owns (sharding). Once every batch is
        handled, the timer is armed for the next tick (a pass left unfinished arms nothing: the
        daemon's retry of the pass does). Ticks due within `lead` of `now` are decided too where
        they may be (`ticking.early`): their runs come with `not_before`."""
        soonest: list[dt.datetime | None] = []
        for batch in ticking.due(self.ctx, now, owns, ahead=self.lead):
            soonest.append(_earliest(batch.wakeups.values()))
            yield batch.work
        if self.timer is not None:
            # A schedule this pass moved to a tick already due (a long downtime counted in
            # steps) wakes the daemon at once; the others at their next tick.
            soonest.append(self.next_wakeup(after=now, owns=owns))
            self._wake_by(_earliest(soonest), after=now)

    def next_wakeup(
        self, after: dt.datetime | None = None, owns: Callable[[str], bool] | None = None
    ) -> dt.datetime | None:
        """The earliest next tick (strictly after `after`, when given) of the schedules in the
        repos `owns` accepts (all without it)."""
        ticks = self.ctx.store.next_ticks(after)
        return _earliest(when for repo, when in ticks.items() if owns is None or owns(repo))

    def arm_timer(self, owns: Callable[[str], bool] | None = None) -> None:
        """Give the timer the next wake-up (at start-up, or when repos change hands: the DB is the truth)."""
        self._wake_by(self.next_wakeup(owns=owns))

    def _wake_by(self, tick: dt.datetime | None, after: dt.datetime | None = None) -> None:
        """Arm the timer `lead` before `tick`, when the tick's schedule is decided. `after`: a
        pass at that time decided what it could of the ticks up to `after + lead`; a tick in
        that window still to come is one that must wait until it is due (`ticking.early`)."""
        if self.timer is None or tick is None:
            return
        when = tick - self.lead
        if after is not None and when <= after < tick:
            when = tick
        self.timer.wake_by(when)

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
        return self.on_transitions([transition], now)

    def on_transitions(self, transitions: Sequence[StatusTransition], now: dt.datetime) -> Work:
        """`on_transition` for transitions recorded together (a backend's burst of first
        statuses): their runs read in one query, and the subscriptions looked at only when
        some operation has any."""
        store = self.ctx.store
        if len(transitions) == 1:
            found = store.run(transitions[0].run)
            runs = {found.name: found} if found is not None else {}
            followed = True
        else:
            runs = {run.name: run for run in store.runs_named(t.run for t in transitions)}
            followed = bool(store.subscriptions_following(None))
        parts: list[Work] = []
        for transition in transitions:
            run = runs.get(transition.run)
            if run is None or run.id is None:
                continue
            if followed:
                parts.append(events.fire_pending(self.ctx, run.operation_id, now))
            if is_done(transition.status):
                # Read for a final status only: most transitions are not (every tick run's first
                # one), and only a container's final one stops its children.
                row = store.run_detail(run.id)
                if row is not None and row.container is not None:
                    parts.append(Work(stops=tree.active_children(self.ctx, transition.run)))
                if run.parent is not None:
                    parts.append(tree.advance_parent(self.ctx, run.parent, now))
                parts.append(hooks.fire_hooks(self.ctx, transition.run, transition.status, now))
        return Work.merge(parts)

    def on_report(self, run_name: str, now: dt.datetime) -> Work:
        """What a run's reported values cause: its parent's per-run stopping policy may stop it
        (a `metric_early_stopping` with a `policy`, judged on the siblings' values)."""
        return tree.judge_child(self.ctx, run_name, now)

    def resume(self, now: dt.datetime, owns: Callable[[str], bool] | None = None) -> Work:
        """Re-drive what a crash may have interrupted; safe to call at any time.

        Runs recorded but never submitted come back as `new_runs` (submission is idempotent by
        name), unconsumed transitions fire their subscriptions, and containers take the step a
        child's transition may have missed. `owns(repo)` limits it to the repos this replica
        owns (sharding). A tick's run recorded ahead of its tick (a restart in between) comes
        back with `not_before`: it is still not started before its tick."""
        store = self.ctx.store
        unsubmitted = [(store.request_of(run), run) for run in store.unsubmitted_runs()]
        parts = [
            Work(
                new_runs=tuple(
                    NewRun(request, str(run.status), run.parent, not_before=_not_before(request, now))
                    for request, run in unsubmitted
                    if owns is None or owns(request.op.repo)
                )
            ),
            events.fire_pending(self.ctx, None, now, owns),
        ]
        containers = store.unsettled_containers()
        repos = store.repos_of_runs(containers) if owns is not None else {}
        for name in containers:
            if owns is None or owns(repos.get(name, "")):
                parts.append(tree.advance_parent(self.ctx, name, now))
        return Work.merge(parts)


def _not_before(request: RunRequest, now: dt.datetime) -> dt.datetime | None:
    """The tick a tick's run waits for, when it is still to come."""
    if request.cause != Cause.SCHEDULE:
        return None
    tick = tick_of_cause(request.cause_id)
    return tick if tick is not None and tick > now else None


def _earliest(times: Iterable[dt.datetime | None]) -> dt.datetime | None:
    return min((t for t in times if t is not None), default=None)


__all__ = ["Orchestrator"]
