"""Firing due ticks exactly once: the pure decision (`scheduling.ticks.decide`) applied in one transaction.

For one schedule, the schedule's row is locked, the decision is made from what the rows say
(watermark, runs so far, the schedule's active and latest runs), and everything it implies is
written before the lock is released: the fired tick claimed (`store.claim_tick`, unique per
(op, instant)) together with its run, a skipped tick as a run that never starts (status skipped,
with the reason), missed ticks as one range row, and the new watermark and wake-up. A second
daemon, or a second call, finds the watermark moved and does nothing; a crash rolls all of it back.
The run is returned for the daemon to submit; if the daemon dies before submitting, `resume`
returns it again (submission is idempotent by run name).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from reconciler.model import Cause, OpKey, RunRequest
from reconciler.orchestration import tree
from reconciler.orchestration.registry import options_of, registered_at
from reconciler.orchestration.specs import ScheduleOptions, request_for, schedule_spec
from reconciler.orchestration.tree import Context
from reconciler.orchestration.work import Notice, Work
from reconciler.scheduling.ticks import PastRun, decide, tick_cause_id
from reconciler.statuses import Status
from reconciler.tracking import ScheduleState, Tx


def past_runs(ctx: Context, s: Tx, operation_id: int) -> list[PastRun]:
    """The schedule's fired runs that `decide` looks at: the active ones and the latest, oldest first."""
    return [PastRun(name, status) for name, status in ctx.store.past_runs(operation_id, session=s)]


def tick_request(key: OpKey, state: ScheduleState, at: dt.datetime, options: ScheduleOptions) -> RunRequest:
    """The run of the tick at `at`: the stored spec as registered (its `schedule` section included,
    so the run records what made it; backends ignore it)."""
    return request_for(
        key,
        dict(state.spec or {}),
        cause=Cause.SCHEDULE,
        cause_id=tick_cause_id(at),
        commit=state.commit_sha or "",
        namespace=options.namespace,
        hash_=state.spec_hash,
    )


def tick(ctx: Context, key: OpKey, now: dt.datetime) -> tuple[Work, dt.datetime | None, bool]:
    """Handle `key`'s due ticks at `now`; (work, next wake-up, whether this call changed anything)."""
    with ctx.store.unit_of_work() as s:
        state = ctx.store.lock_schedule(key, s)
        if state is None or state.next_tick_at is None or state.next_tick_at > now or state.schedule is None:
            return Work(), None, False  # not due (any more): another daemon or call handled it
        oid = state.operation_id
        # What the repo config said when the schedule was registered: right after a restart, or
        # while fetches fail, the repo config may not have been read yet.
        options = options_of(state, ctx.options_for(key))
        try:
            spec = schedule_spec(state.schedule, options.tz)
        except ValueError as e:  # pydantic's ValidationError and ScheduleError are ValueErrors
            state.next_tick_at, state.updated_at = None, now
            ctx.store.save(state, session=s)
            return (
                Work(notices=(Notice(str(key), "InvalidSchedule", f"the schedule cannot be evaluated: {e}"),)),
                None,
                True,
            )
        decision = decide(
            spec,
            now=now,
            registered_at=registered_at(state),
            last_tick=state.last_tick_at,
            runs_so_far=state.run_count,
            runs=past_runs(ctx, s, oid),
            concurrency=options.concurrency,
            starting_deadline=options.starting_deadline,
        )
        work = Work()
        missed = decision.missed
        if missed is not None and ctx.store.record_tick(
            oid, missed.first, now, outcome="missed", reason="Missed", message=missed.reason,
            missed_until=missed.last, missed_count=missed.count, session=s,
        ):  # fmt: skip
            text = (
                f"{missed.count} tick(s) from {missed.first.isoformat()} to {missed.last.isoformat()} {missed.reason}"
            )
            work += Work(notices=(Notice(str(key), "MissedTicks", text),))
        skipped = decision.skipped
        if skipped is not None and ctx.store.record_tick(
            oid, skipped.at, now, outcome="skipped", reason=skipped.reason, message=skipped.message, session=s
        ):
            request = tick_request(key, state, skipped.at, options)
            run, _ = ctx.record(request, now, session=s, final=(Status.SKIPPED, skipped.reason, skipped.message))
            assert run.id is not None
            ctx.store.set_tick_run(oid, skipped.at, run.id, s)
        if decision.fire is not None and ctx.store.claim_tick(
            str(key), decision.fire, decision.next_wakeup, now, session=s
        ):
            request = tick_request(key, state, decision.fire, options)
            run, launched = tree.launch(ctx, s, request, now=now)
            ctx.store.attach_tick_run(str(key), decision.fire, run, session=s)
            work += launched
            work += Work(stops=decision.stop)
        # claim_tick moved the row under the ORM's feet; read it again before the last write.
        state = ctx.store.lock_schedule(key, s)
        assert state is not None
        if decision.handled_until is not None:
            state.last_tick_at = decision.handled_until
        state.next_tick_at = None if decision.finished else decision.next_wakeup
        state.updated_at = now
        ctx.store.save(state, session=s)
        return work, state.next_tick_at, True


def due(
    ctx: Context, now: dt.datetime, owns: Callable[[str], bool] | None = None
) -> tuple[Work, dict[OpKey, dt.datetime | None]]:
    work = Work()
    wakeups: dict[OpKey, dt.datetime | None] = {}
    for row in ctx.store.due_ticks(now):
        key = OpKey.parse(row.op_key)
        if owns is not None and not owns(key.repo):
            continue  # another replica's repo: its owner fires it
        done, nxt, changed = tick(ctx, key, now)
        work += done
        if changed:
            wakeups[key] = nxt
    return work, wakeups


def next_wakeup(ctx: Context) -> dt.datetime | None:
    return ctx.store.next_wakeup()


__all__ = ["due", "next_wakeup", "past_runs", "tick", "tick_request"]
