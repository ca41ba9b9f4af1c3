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

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reconciler.model import Cause, OpKey, RunRequest
from reconciler.orchestration import records, tree
from reconciler.orchestration.registry import registered_at
from reconciler.orchestration.specs import ScheduleOptions, request_for, schedule_spec
from reconciler.orchestration.tree import Context
from reconciler.orchestration.work import Notice, Work
from reconciler.scheduling.lifecycle import ACTIVE
from reconciler.scheduling.ticks import PastRun, decide, tick_cause_id
from reconciler.statuses import Status
from reconciler.tracking.tables import Run, ScheduleState, ScheduleTick

SCHEDULE = "schedule"


def past_runs(s: Session, operation_id: int) -> list[PastRun]:
    """The schedule's fired runs that `decide` looks at: the active ones and the latest, oldest first."""
    t, r = records.table(ScheduleTick).c, records.table(Run).c
    base = (
        select(r.name, r.status, t.tick_at)
        .join_from(records.table(ScheduleTick), records.table(Run), t.run_id == r.id)
        .where(t.operation_id == operation_id, t.outcome == "fired")
    )
    rows = {row.name: row for row in s.execute(base.where(r.status.in_(sorted(ACTIVE))).order_by(t.tick_at))}
    latest = s.execute(base.order_by(t.tick_at.desc()).limit(1)).first()
    if latest is not None:
        rows[latest.name] = latest
    return [PastRun(row.name, str(row.status)) for row in sorted(rows.values(), key=lambda x: x.tick_at)]


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
    options = ctx.options_for(key)
    with ctx.store.unit_of_work() as s:
        state = records.lock_schedule(s, key)
        if state is None or state.next_tick_at is None or state.next_tick_at > now or state.schedule is None:
            return Work(), None, False  # not due (any more): another daemon or call handled it
        oid = state.operation_id
        try:
            spec = schedule_spec(state.schedule, options.tz)
        except ValueError as e:  # pydantic's ValidationError and ScheduleError are ValueErrors
            state.next_tick_at, state.updated_at = None, now
            s.add(state)
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
            runs=past_runs(s, oid),
            concurrency=options.concurrency,
            starting_deadline=options.starting_deadline,
        )
        work = Work()
        missed = decision.missed
        if missed is not None and records.record_tick(
            s, oid, missed.first, now, outcome="missed", reason="Missed", message=missed.reason,
            missed_until=missed.last, missed_count=missed.count,
        ):  # fmt: skip
            text = (
                f"{missed.count} tick(s) from {missed.first.isoformat()} to {missed.last.isoformat()} {missed.reason}"
            )
            work += Work(notices=(Notice(str(key), "MissedTicks", text),))
        skipped = decision.skipped
        if skipped is not None and records.record_tick(
            s, oid, skipped.at, now, outcome="skipped", reason=skipped.reason, message=skipped.message
        ):
            request = tick_request(key, state, skipped.at, options)
            run, new = records.create_run(ctx.store, s, request, origin=SCHEDULE, backend=ctx.backend, now=now)
            if new:
                ctx.store.transition(
                    run, Status.SKIPPED, at=now, reason=skipped.reason, message=skipped.message, session=s
                )
            assert run.id is not None
            records.set_tick_run(s, oid, skipped.at, run.id)
        if decision.fire is not None and ctx.store.claim_tick(
            str(key), decision.fire, decision.next_wakeup, now, session=s
        ):
            request = tick_request(key, state, decision.fire, options)
            run, launched = tree.launch(ctx, s, request, origin=SCHEDULE, now=now)
            ctx.store.attach_tick_run(str(key), decision.fire, run, session=s)
            work += launched
            work += Work(stops=decision.stop)
        # claim_tick moved the row under the ORM's feet; read it again before the last write.
        state = records.lock_schedule(s, key)
        assert state is not None
        if decision.handled_until is not None:
            state.last_tick_at = decision.handled_until
        state.next_tick_at = None if decision.finished else decision.next_wakeup
        state.updated_at = now
        s.add(state)
        s.flush()
        return work, state.next_tick_at, True


def due(ctx: Context, now: dt.datetime) -> tuple[Work, dict[OpKey, dt.datetime | None]]:
    work = Work()
    wakeups: dict[OpKey, dt.datetime | None] = {}
    for row in ctx.store.due_ticks(now):
        key = OpKey.parse(row.op_key)
        done, nxt, changed = tick(ctx, key, now)
        work += done
        if changed:
            wakeups[key] = nxt
    return work, wakeups


def next_wakeup(ctx: Context) -> dt.datetime | None:
    st = records.table(ScheduleState).c
    with records.read(ctx.store) as s:
        value = s.execute(select(func.min(st.next_tick_at))).scalar_one_or_none()
    if value is None:
        return None
    # min() loses the column type on SQLite: the value may come back as text or naive.
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


__all__ = ["due", "next_wakeup", "past_runs", "tick", "tick_request"]
