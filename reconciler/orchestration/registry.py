"""Schedules and subscriptions follow Git: the planner's register/update/remove and (un)subscribe
actions become rows, each keeping the operation's compiled spec so a tick or an event can build
its run later from the database alone (Git may have moved on; the daemon may have restarted).

A schedule whose timing changed starts afresh at `now` (a new schedule never fires ticks from
before it existed); ticks of the old timing that were due and not yet handled are recorded as
missed, never dropped silently. A change of the spec alone keeps the tick history: the next tick
simply runs the new spec. A tick decided ahead of its time (`ticking.TICK_LEAD`) with what the
schedule was before a change or removal is taken back (`Work.withdrawals`): its run and tick end
skipped, and the applier leaves alone only a run it is handing over already (its tick came).

Schedules are registered and removed `REGISTER_BATCH` at a time, each batch in one transaction
with its rows locked together, so a commit of ten thousand schedules costs a few dozen
transactions, not ten thousand. Their operations are recorded by the daemon before the plan is
applied (`Daemon._record_operations`); a schedule of an untracked operation is an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from reconciler.model import DesiredOp, DesiredState, Mode, OpKey
from reconciler.orchestration.specs import ScheduleOptions, schedule_spec
from reconciler.orchestration.tree import Context
from reconciler.orchestration.work import Notice, StatusUpdate, Work
from reconciler.plan.actions import Action, ActionKind
from reconciler.plan.state import TrackedSchedule, TrackedSubscription
from reconciler.scheduling.ticks import (
    MAX_COUNTED_MISSED,
    ConcurrencyPolicy,
    ScheduleError,
    ScheduleSpec,
    anchored,
    iter_ticks,
    tick_of_cause,
)
from reconciler.statuses import Status
from reconciler.tracking import ScheduleState, Store, TickRow, Tx

_BAD_SCHEDULE = (ValidationError, ScheduleError, ValueError)
# Schedules registered or removed per transaction.
REGISTER_BATCH = 500


def watermark(spec: ScheduleSpec, state: ScheduleState) -> dt.datetime:
    """Ticks after this instant are still to be handled (as `ticks.decide` counts them)."""
    if state.last_tick_at is not None:
        return state.last_tick_at
    if spec.kind == "datetime":
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return registered_at(state)


def registered_at(state: ScheduleState) -> dt.datetime:
    return state.registered_at or state.updated_at


def options_of(state: ScheduleState, fallback: ScheduleOptions) -> ScheduleOptions:
    """The options the schedule was registered with; `fallback` for what a row before revision
    0005 did not store."""
    deadline = state.starting_deadline_seconds
    return replace(
        fallback,
        tz=state.tz or fallback.tz,
        namespace=state.namespace or fallback.namespace,
        starting_deadline=dt.timedelta(seconds=deadline) if deadline is not None else fallback.starting_deadline,
        concurrency=ConcurrencyPolicy(state.concurrency) if state.concurrency else fallback.concurrency,
    )


def _stored(options: ScheduleOptions) -> tuple[str, str, float, str]:
    return options.tz, options.namespace, options.starting_deadline.total_seconds(), options.concurrency.value


def stale_options(ctx: Context, actions: Sequence[Action], desired: DesiredState) -> list[DesiredOp]:
    """Scheduled operations the plan leaves alone (same spec) whose repo config changed since they
    were registered: the planner compares operations, not the repo config's schedule options."""
    unchanged = [
        op
        for a in actions
        if a.action is ActionKind.NOOP
        and (op := desired.ops.get(a.op)) is not None
        and op.mode is Mode.SCHEDULED
        and a.op not in desired.kept
    ]
    if not unchanged:
        return []
    stored = ctx.store.schedule_options(desired.repo)
    return [op for op in unchanged if stored.get(str(op.key)) != _stored(ctx.options_for(op.key))]


def stale_subscribers(ctx: Context, actions: Sequence[Action], desired: DesiredState) -> list[DesiredOp]:
    """Subscribed operations the plan leaves alone whose repo config moved them to another
    namespace since they subscribed (their next event runs must go there)."""
    unchanged = [
        op
        for a in actions
        if a.action is ActionKind.NOOP
        and (op := desired.ops.get(a.op)) is not None
        and op.mode is Mode.SUBSCRIBED
        and a.op not in desired.kept
    ]
    if not unchanged:
        return []
    stored = ctx.store.subscriber_namespaces(desired.repo)
    return [op for op in unchanged if stored.get(str(op.key)) != ctx.options_for(op.key).namespace]


def first_pending_tick(spec: ScheduleSpec, state: ScheduleState) -> dt.datetime | None:
    """The next tick to handle, or None once `maxRuns` or `endAt` ended the schedule."""
    if spec.max_runs is not None and state.run_count >= spec.max_runs:
        return None
    spec = anchored(spec, registered_at(state))
    return next(iter_ticks(spec, watermark(spec, state)), None)


def miss_due(
    key: OpKey, state: ScheduleState, options: ScheduleOptions, now: dt.datetime, why: str
) -> tuple[list[TickRow], list[Notice]]:
    """The ticks of the current timing due by `now`, as one missed row (the timing is going away)."""
    if state.next_tick_at is None or state.next_tick_at > now or state.schedule is None:
        return [], []
    try:
        spec = schedule_spec(state.schedule, options.tz)
    except _BAD_SCHEDULE:
        return [], []
    spec = anchored(spec, registered_at(state))
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    count = 0
    for tick in iter_ticks(spec, watermark(spec, state)):
        if tick > now or count >= MAX_COUNTED_MISSED:
            break
        first, last, count = first or tick, tick, count + 1
    if first is None or last is None:
        return [], []
    row = TickRow(state.operation_id, first, "missed", "ScheduleChanged", why, missed_until=last, missed_count=count)
    text = f"{count} tick(s) from {first.isoformat()} to {last.isoformat()}: {why}"
    return [row], [Notice(str(key), "MissedTicks", text)]


def withdrawals(
    ctx: Context, operation_ids: Iterable[int], now: dt.datetime, reason: str, why: str, s: Tx
) -> tuple[StatusUpdate, ...]:
    """The runs of ticks still to come that were decided ahead (`ticking.TICK_LEAD`) with what
    these schedules were before this change: each is taken back, skipped with `reason` and
    "`why` before its tick at ...". Their ticks stay claimed: a tick decided is never decided
    twice, so the tick is skipped, and the next one runs what Git has now."""
    out: list[StatusUpdate] = []
    for run in ctx.store.unsubmitted_tick_runs(operation_ids, session=s):
        tick = tick_of_cause(run.cause_id)
        if tick is not None and tick > now:
            message = f"{why} before its tick at {tick.isoformat()}"
            out.append(StatusUpdate(run.name, str(Status.SKIPPED), reason, message))
    return tuple(out)


def register_schedules(
    ctx: Context, ops: Sequence[DesiredOp], now: dt.datetime
) -> tuple[Work, dict[OpKey, dt.datetime | None]]:
    """Register or update these operations' schedules in one transaction; returns notices and
    their next wake-ups."""
    notices: list[Notice] = []
    missed: list[TickRow] = []
    wakeups: dict[OpKey, dt.datetime | None] = {}
    with ctx.store.unit_of_work() as s:
        states = dict(ctx.store.ensure_schedules([op.key for op in ops], now, s))
        for op in ops:
            state = states[str(op.key)]
            options = ctx.options_for(op.key)
            schedule = dict(op.schedule or {})
            if state.schedule != schedule or state.registered_at is None or state.tz not in (None, options.tz):
                if state.schedule is not None:
                    why = "the schedule changed before they were handled"
                    rows, said = miss_due(op.key, state, options_of(state, options), now, why)
                    missed += rows
                    notices += said
                state.registered_at, state.last_tick_at = now, None
            state.schedule, state.spec, state.spec_hash = schedule, dict(op.effective), op.spec_hash
            state.commit_sha, state.kind, state.updated_at = op.commit, op.kind, now
            state.tz, state.namespace = options.tz, options.namespace
            state.starting_deadline_seconds = options.starting_deadline.total_seconds()
            state.concurrency = options.concurrency.value
            try:
                state.next_tick_at = first_pending_tick(schedule_spec(schedule, options.tz), state)
            except _BAD_SCHEDULE as e:
                state.next_tick_at = None
                notices.append(Notice(str(op.key), "InvalidSchedule", f"the schedule cannot be evaluated: {e}"))
            wakeups[op.key] = state.next_tick_at
        ctx.store.claim_ticks(missed, now, s)
        ctx.store.save(*states.values(), session=s)
        commits = sorted({op.commit[:12] for op in ops if op.commit})
        why = f"its schedule changed (commit {', '.join(commits)})" if commits else "its schedule changed"
        taken = withdrawals(ctx, [state.operation_id for state in states.values()], now, "ScheduleChanged", why, s)
    return Work(notices=tuple(notices), withdrawals=taken), wakeups


def remove_schedules(ctx: Context, keys: Sequence[OpKey], now: dt.datetime) -> Work:
    """Remove these schedules in one transaction; ticks due and not handled are recorded missed."""
    notices: list[Notice] = []
    missed: list[TickRow] = []
    with ctx.store.unit_of_work() as s:
        locked = ctx.store.lock_schedules(ctx.store.op_ids(keys, session=s).values(), s)
        for op_key, state in locked:
            key = OpKey.parse(op_key)
            options = options_of(state, ctx.options_for(key))
            rows, said = miss_due(key, state, options, now, "the schedule was removed before they were handled")
            missed += rows
            notices += said
        ctx.store.claim_ticks(missed, now, s)
        ids = [state.operation_id for _, state in locked]
        taken = withdrawals(ctx, ids, now, "ScheduleRemoved", "its schedule was removed from Git", s)
        ctx.store.delete_schedules(ids, s)
    return Work(notices=tuple(notices), withdrawals=taken)


def _kinds(raw: Iterable[Any]) -> set[Status]:
    out: set[Status] = set()
    for kind in raw:
        name = str(kind).removeprefix("run_status_")
        if name in Status.__members__.values():
            out.add(Status(name))
    return out


def _sources(
    ctx: Context, s: Tx, op: DesiredOp, desired: DesiredState, ref: str
) -> list[tuple[OpKey, DesiredOp | None]]:
    """The operations whose runs `ref` (`ops.<name>` or `runs.<name or uuid>`) follows."""
    kind, _, target = ref.partition(".")
    if kind == "ops":
        found: dict[OpKey, DesiredOp | None] = {
            k: d for k, d in desired.ops.items() if k.repo == op.key.repo and k.name == target
        }
        for text in ctx.store.operations_named(op.key.repo, target, session=s):
            key = OpKey.parse(text)
            if key not in found:
                found[key] = None
        return sorted(found.items())
    if kind == "runs":
        owner = ctx.store.operation_of_run(target, session=s)
        return [(OpKey.parse(owner), None)] if owner is not None else []
    return []


def subscribe(ctx: Context, op: DesiredOp, desired: DesiredState, now: dt.datetime) -> Work:
    notices: list[Notice] = []
    with ctx.store.unit_of_work() as s:
        ctx.store.upsert_operation(
            str(op.key), op.key.repo, op.mode.value, now, spec_hash=op.spec_hash, commit_sha=op.commit, session=s
        )
        ctx.store.register_subscriber(
            op.key,
            spec_hash=op.spec_hash,
            commit_sha=op.commit,
            kind=op.kind,
            events=op.events,
            spec=op.effective,
            namespace=ctx.options_for(op.key).namespace,
            now=now,
            session=s,
        )
        wanted: dict[OpKey, set[Status]] = {}
        for event in op.events:
            sources = _sources(ctx, s, op, desired, str(event.get("ref", "")))
            if not sources:
                notices.append(
                    Notice(str(op.key), "UnknownEventRef", f"no operation or run matches {event.get('ref')!r}")
                )
            for key, source in sources:
                if ctx.store.op_id(key, session=s) is None and source is not None:
                    ctx.store.upsert_operation(
                        str(key), key.repo, source.mode.value, now, spec_hash=source.spec_hash,
                        commit_sha=source.commit, session=s,
                    )  # fmt: skip
                wanted.setdefault(key, set()).update(_kinds(event.get("kinds") or ()))
        for key, kinds in wanted.items():
            if ctx.store.op_id(key, session=s) is not None:
                ctx.store.upsert_subscription(str(op.key), str(key), kinds, now, session=s)
        ctx.store.keep_subscriptions(op.key, [str(k) for k in wanted], s)
    return Work(notices=tuple(notices))


def unsubscribe(ctx: Context, key: OpKey) -> None:
    ctx.store.unsubscribe(key)


def sync(
    ctx: Context, actions: Sequence[Action], desired: DesiredState, now: dt.datetime
) -> tuple[Work, dict[OpKey, dt.datetime | None]]:
    """Apply the planner's schedule and subscription actions; returns notices and changed wake-ups."""
    parts: list[Work] = []
    wakeups: dict[OpKey, dt.datetime | None] = {}
    register: list[DesiredOp] = []
    remove: list[OpKey] = []
    for action in actions:
        kind = action.action
        if kind in (ActionKind.REGISTER_SCHEDULE, ActionKind.UPDATE_SCHEDULE, ActionKind.SUBSCRIBE):
            op = desired.ops.get(action.op)
            if op is None:
                parts.append(
                    Work(notices=(Notice(str(action.op), "NotDesired", f"{kind.value}: not in the desired state"),))
                )
            elif kind == ActionKind.SUBSCRIBE:
                parts.append(subscribe(ctx, op, desired, now))
            else:
                register.append(op)
        elif kind == ActionKind.REMOVE_SCHEDULE:
            remove.append(action.op)
        elif kind == ActionKind.UNSUBSCRIBE:
            unsubscribe(ctx, action.op)
    register += stale_options(ctx, actions, desired)
    for start in range(0, len(register), REGISTER_BATCH):
        done, moved = register_schedules(ctx, register[start : start + REGISTER_BATCH], now)
        parts.append(done)
        wakeups.update(moved)
    for start in range(0, len(remove), REGISTER_BATCH):
        chunk = remove[start : start + REGISTER_BATCH]
        parts.append(remove_schedules(ctx, chunk, now))
        wakeups.update(dict.fromkeys(chunk))
    for op in stale_subscribers(ctx, actions, desired):
        parts.append(subscribe(ctx, op, desired, now))
    return Work.merge(parts), wakeups


def tracked(store: Store, repo: str) -> tuple[dict[OpKey, TrackedSchedule], dict[OpKey, TrackedSubscription]]:
    """The schedules and subscriptions registered for `repo`, as the planner sees them."""
    schedules = {
        OpKey.parse(key): TrackedSchedule(OpKey.parse(key), spec_hash, schedule)
        for key, spec_hash, schedule in store.tracked_schedules(repo)
    }
    subscriptions = {
        OpKey.parse(key): TrackedSubscription(OpKey.parse(key), spec_hash, tuple(events))
        for key, spec_hash, events in store.tracked_subscriptions(repo)
    }
    return schedules, subscriptions


__all__ = ["REGISTER_BATCH", "register_schedules", "remove_schedules", "subscribe", "sync", "tracked", "unsubscribe"]
