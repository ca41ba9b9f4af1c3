"""Schedules and subscriptions follow Git: the planner's register/update/remove and (un)subscribe
actions become rows, each keeping the operation's compiled spec so a tick or an event can build
its run later from the database alone (Git may have moved on; the daemon may have restarted).

A schedule whose timing changed starts afresh at `now` (a new schedule never fires ticks from
before it existed); ticks of the old timing that were due and not yet handled are recorded as
missed, never dropped silently. A change of the spec alone keeps the tick history: the next tick
simply runs the new spec.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from reconciler.model import DesiredOp, DesiredState, OpKey
from reconciler.orchestration import records
from reconciler.orchestration.specs import ScheduleOptions, schedule_spec
from reconciler.orchestration.tree import Context
from reconciler.orchestration.work import Notice, Work
from reconciler.plan.actions import Action, ActionKind
from reconciler.plan.state import TrackedSchedule, TrackedSubscription
from reconciler.scheduling.ticks import MAX_COUNTED_MISSED, ScheduleError, ScheduleSpec, anchored, iter_ticks
from reconciler.statuses import Status
from reconciler.tracking.tables import Operation, Repo, Run, ScheduleState, Subscriber, Subscription

_BAD_SCHEDULE = (ValidationError, ScheduleError, ValueError)


def watermark(spec: ScheduleSpec, state: ScheduleState) -> dt.datetime:
    """Ticks after this instant are still to be handled (as `ticks.decide` counts them)."""
    if state.last_tick_at is not None:
        return state.last_tick_at
    if spec.kind == "datetime":
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return registered_at(state)


def registered_at(state: ScheduleState) -> dt.datetime:
    return state.registered_at or state.updated_at


def first_pending_tick(spec: ScheduleSpec, state: ScheduleState) -> dt.datetime | None:
    """The next tick to handle, or None once `maxRuns` or `endAt` ended the schedule."""
    if spec.max_runs is not None and state.run_count >= spec.max_runs:
        return None
    spec = anchored(spec, registered_at(state))
    return next(iter_ticks(spec, watermark(spec, state)), None)


def miss_due(s: Session, state: ScheduleState, options: ScheduleOptions, now: dt.datetime, why: str) -> list[Notice]:
    """Record the ticks of the current timing due by `now` as missed (the timing is going away)."""
    if state.next_tick_at is None or state.next_tick_at > now or state.schedule is None:
        return []
    try:
        spec = schedule_spec(state.schedule, options.tz)
    except _BAD_SCHEDULE:
        return []
    spec = anchored(spec, registered_at(state))
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    count = 0
    for tick in iter_ticks(spec, watermark(spec, state)):
        if tick > now or count >= MAX_COUNTED_MISSED:
            break
        first, last, count = first or tick, tick, count + 1
    if first is None or last is None:
        return []
    records.record_tick(
        s, state.operation_id, first, now, outcome="missed", reason="ScheduleChanged", message=why,
        missed_until=last, missed_count=count,
    )  # fmt: skip
    key = records.op_key_of(s, state.operation_id)
    return [Notice(str(key), "MissedTicks", f"{count} tick(s) from {first.isoformat()} to {last.isoformat()}: {why}")]


def register_schedule(ctx: Context, op: DesiredOp, now: dt.datetime) -> tuple[Work, dt.datetime | None]:
    """Register or update `op`'s schedule; returns notices and its next wake-up."""
    options = ctx.options_for(op.key)
    schedule = dict(op.schedule or {})
    notices: list[Notice] = []
    with ctx.store.unit_of_work() as s:
        ctx.store.upsert_operation(
            str(op.key), op.key.repo, op.mode.value, now, spec_hash=op.spec_hash, commit_sha=op.commit, session=s
        )
        oid = records.op_id(s, op.key)
        records.insert_ignore(
            s, ScheduleState, {"operation_id": oid, "run_count": 0, "updated_at": now}, ["operation_id"]
        )
        state = records.lock_schedule(s, op.key)
        assert state is not None
        if state.schedule != schedule or state.registered_at is None:
            if state.schedule is not None:
                notices += miss_due(s, state, options, now, "the schedule changed before they were handled")
            state.registered_at, state.last_tick_at = now, None
        state.schedule, state.spec, state.spec_hash = schedule, dict(op.effective), op.spec_hash
        state.commit_sha, state.kind, state.updated_at = op.commit, op.kind, now
        try:
            state.next_tick_at = first_pending_tick(schedule_spec(schedule, options.tz), state)
        except _BAD_SCHEDULE as e:
            state.next_tick_at = None
            notices.append(Notice(str(op.key), "InvalidSchedule", f"the schedule cannot be evaluated: {e}"))
        s.add(state)
        s.flush()
        return Work(notices=tuple(notices)), state.next_tick_at


def remove_schedule(ctx: Context, key: OpKey, now: dt.datetime) -> Work:
    with ctx.store.unit_of_work() as s:
        state = records.lock_schedule(s, key)
        if state is None:
            return Work()
        notices = miss_due(s, state, ctx.options_for(key), now, "the schedule was removed before they were handled")
        s.delete(state)
        return Work(notices=tuple(notices))


def _kinds(raw: Iterable[Any]) -> set[Status]:
    out: set[Status] = set()
    for kind in raw:
        name = str(kind).removeprefix("run_status_")
        if name in Status.__members__.values():
            out.add(Status(name))
    return out


def _sources(s: Session, op: DesiredOp, desired: DesiredState, ref: str) -> list[tuple[OpKey, DesiredOp | None]]:
    """The operations whose runs `ref` (`ops.<name>` or `runs.<name or uuid>`) follows."""
    kind, _, target = ref.partition(".")
    if kind == "ops":
        found: dict[OpKey, DesiredOp | None] = {
            k: d for k, d in desired.ops.items() if k.repo == op.key.repo and k.name == target
        }
        o, r = records.table(Operation).c, records.table(Repo).c
        tracked = s.execute(
            select(o.op_key).join(records.table(Repo), r.id == o.repo_id).where(r.name == op.key.repo)
        ).scalars()
        for text in tracked:
            key = OpKey.parse(str(text))
            if key.name == target and key not in found:
                found[key] = None
        return sorted(found.items())
    if kind == "runs":
        rc = records.table(Run).c
        row = s.execute(select(rc.operation_id).where((rc.name == target) | (rc.uuid == target))).first()
        return [(records.op_key_of(s, int(row[0])), None)] if row is not None else []
    return []


def subscribe(ctx: Context, op: DesiredOp, desired: DesiredState, now: dt.datetime) -> Work:
    notices: list[Notice] = []
    with ctx.store.unit_of_work() as s:
        ctx.store.upsert_operation(
            str(op.key), op.key.repo, op.mode.value, now, spec_hash=op.spec_hash, commit_sha=op.commit, session=s
        )
        oid = records.op_id(s, op.key)
        values = {
            "spec_hash": op.spec_hash,
            "commit_sha": op.commit,
            "kind": op.kind,
            "events": [dict(e) for e in op.events],
            "spec": dict(op.effective),
            "updated_at": now,
        }
        if not records.insert_ignore(
            s, Subscriber, {"operation_id": oid, "registered_at": now, **values}, ["operation_id"]
        ):
            row = s.get(Subscriber, oid, with_for_update=True, populate_existing=True)
            assert row is not None
            for name, value in values.items():
                setattr(row, name, value)
            s.add(row)
        wanted: dict[OpKey, set[Status]] = {}
        for event in op.events:
            sources = _sources(s, op, desired, str(event.get("ref", "")))
            if not sources:
                notices.append(
                    Notice(str(op.key), "UnknownEventRef", f"no operation or run matches {event.get('ref')!r}")
                )
            for key, source in sources:
                if records.op_id(s, key) is None and source is not None:
                    ctx.store.upsert_operation(
                        str(key), key.repo, source.mode.value, now, spec_hash=source.spec_hash,
                        commit_sha=source.commit, session=s,
                    )  # fmt: skip
                wanted.setdefault(key, set()).update(_kinds(event.get("kinds") or ()))
        for key, kinds in wanted.items():
            if records.op_id(s, key) is not None:
                ctx.store.upsert_subscription(str(op.key), str(key), kinds, now, session=s)
        keep = [i for i in (records.op_id(s, k) for k in wanted) if i is not None]
        c = records.table(Subscription).c
        s.execute(delete(records.table(Subscription)).where(c.operation_id == oid, c.source_operation_id.not_in(keep)))
    return Work(notices=tuple(notices))


def unsubscribe(ctx: Context, key: OpKey) -> None:
    with ctx.store.unit_of_work() as s:
        oid = records.op_id(s, key)
        if oid is None:
            return
        s.execute(delete(records.table(Subscription)).where(records.table(Subscription).c.operation_id == oid))
        s.execute(delete(records.table(Subscriber)).where(records.table(Subscriber).c.operation_id == oid))


def sync(
    ctx: Context, actions: Sequence[Action], desired: DesiredState, now: dt.datetime
) -> tuple[Work, dict[OpKey, dt.datetime | None]]:
    """Apply the planner's schedule and subscription actions; returns notices and changed wake-ups."""
    work = Work()
    wakeups: dict[OpKey, dt.datetime | None] = {}
    for action in actions:
        kind = action.action
        if kind in (ActionKind.REGISTER_SCHEDULE, ActionKind.UPDATE_SCHEDULE, ActionKind.SUBSCRIBE):
            op = desired.ops.get(action.op)
            if op is None:
                work += Work(notices=(Notice(str(action.op), "NotDesired", f"{kind.value}: not in the desired state"),))
                continue
            if kind == ActionKind.SUBSCRIBE:
                work += subscribe(ctx, op, desired, now)
            else:
                done, wakeups[op.key] = register_schedule(ctx, op, now)
                work += done
        elif kind == ActionKind.REMOVE_SCHEDULE:
            work += remove_schedule(ctx, action.op, now)
            wakeups[action.op] = None
        elif kind == ActionKind.UNSUBSCRIBE:
            unsubscribe(ctx, action.op)
    return work, wakeups


def tracked(ctx: Context, repo: str) -> tuple[dict[OpKey, TrackedSchedule], dict[OpKey, TrackedSubscription]]:
    o, r = records.table(Operation).c, records.table(Repo).c
    st, sub = records.table(ScheduleState).c, records.table(Subscriber).c
    in_repo = o.repo_id == select(r.id).where(r.name == repo).scalar_subquery()
    with records.read(ctx.store) as s:
        schedules = {
            OpKey.parse(key): TrackedSchedule(OpKey.parse(key), spec_hash, dict(schedule or {}))
            for key, spec_hash, schedule in s.execute(
                select(o.op_key, st.spec_hash, st.schedule)
                .join_from(records.table(ScheduleState), records.table(Operation), st.operation_id == o.id)
                .where(in_repo, st.spec_hash.is_not(None))
            ).all()
        }
        subscriptions = {
            OpKey.parse(key): TrackedSubscription(OpKey.parse(key), spec_hash, tuple(_as_mappings(events)))
            for key, spec_hash, events in s.execute(
                select(o.op_key, sub.spec_hash, sub.events)
                .join_from(records.table(Subscriber), records.table(Operation), sub.operation_id == o.id)
                .where(in_repo)
            ).all()
        }
    return schedules, subscriptions


def _as_mappings(events: Any) -> list[Mapping[str, Any]]:
    return [e for e in events or [] if isinstance(e, Mapping)]


__all__ = ["register_schedule", "remove_schedule", "subscribe", "sync", "tracked", "unsubscribe"]
