"""Firing due ticks exactly once: the pure decision (`scheduling.ticks.decide`) applied to a batch
of schedules in one transaction, one batch after another.

A pass takes the schedules due at `now` (most overdue first) and handles them `TICK_BATCH` at a
time. For a batch, the schedule rows are locked, every decision is made from what the rows say
(watermark, runs so far, and, for the schedules whose policy looks at them, their active and
latest runs), and everything the decisions imply is written before the locks are released: the
ticks claimed (`store.claim_ticks`, unique per (op, instant): a fired tick with its run, a skipped
one as a run that never starts (status skipped, with the reason), missed ones as one range row),
then the new watermarks and next ticks. A second daemon, or a second call, finds the schedules
moved on and does nothing; a crash rolls the whole batch back, and the next pass decides it again.

Each batch's `Work` is handed back before the next batch is decided, so the daemon submits a
minute's first runs while the rest of the minute is still to be decided: a tick waits for its
batch, not for every schedule due with it. A run recorded and not submitted (the daemon died in
between, or a submit failed) is returned again by `resume` (submission is idempotent by run name).

The statements per batch do not grow with its size: the locks, the runs read, the ticks claimed,
their runs recorded (the applier's `record_many`, a few statements for the batch), their runs
attached and the schedules moved are one statement (or a few) each
(`tests/integration/orchestration/test_tick_batches.py` counts them). A skipped tick's run, which
never starts, is still moved to skipped one run at a time, as are the commit statuses queued for
the runs of a repo with a forge.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from reconciler.model import Cause, OpKey, RunRequest
from reconciler.orchestration import tree
from reconciler.orchestration.registry import options_of, registered_at
from reconciler.orchestration.specs import Recording, ScheduleOptions, container_of, request_for, schedule_spec
from reconciler.orchestration.tree import Context
from reconciler.orchestration.work import Notice, Work
from reconciler.scheduling.ticks import PastRun, ScheduleSpec, TickDecision, decide, reads_runs, tick_cause_id
from reconciler.statuses import Status
from reconciler.tracking import Run, ScheduleMove, ScheduleState, TickRow, TrackingError

# Schedules decided per transaction. Small enough that a batch's runs reach the backend soon
# after their tick (a batch of schedules every minute takes tens of milliseconds to decide),
# large enough that a batch's fixed statements are a small share of its cost.
TICK_BATCH = 100
# How long before its tick a schedule is decided and its run recorded (`due(ahead=...)`), so that
# at the tick only the run's object is left to create: a minute's thousand ticks cost about a
# second of deciding and recording, which the ticks otherwise waited for. The timer wakes the
# daemon this long before the earliest tick.
TICK_LEAD = dt.timedelta(seconds=5)


@dataclass(frozen=True)
class Batch:
    """One batch of a pass: what the daemon must do, and the next tick of each schedule it moved
    (None: the schedule has no next tick)."""

    work: Work
    wakeups: dict[OpKey, dt.datetime | None]


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


def due(
    ctx: Context,
    now: dt.datetime,
    owns: Callable[[str], bool] | None = None,
    batch: int | None = None,
    ahead: dt.timedelta = dt.timedelta(0),
) -> Iterator[Batch]:
    """Handle every schedule due at `now`, `batch` (default `TICK_BATCH`) schedules per
    transaction; each batch is yielded once committed. `owns(repo)` leaves other replicas' repos
    to their owners. `ahead`: ticks due up to this long after `now` are decided now too (see
    `fire`), so their runs are ready to submit the moment they are due."""
    batch = batch or TICK_BATCH
    rows = [(row.operation_id, OpKey.parse(row.op_key).repo) for row in ctx.store.due_ticks(now + ahead)]
    mine = [(oid, repo) for oid, repo in rows if owns is None or owns(repo)]
    for start in range(0, len(mine), batch):
        # Asked again per batch: a pass can outlast a lease (the fence in `record` would refuse
        # the repo's runs and roll the whole batch back with them).
        ids = [oid for oid, repo in mine[start : start + batch] if owns is None or owns(repo)]
        yield fire(ctx, ids, now, ahead=ahead)


def early(state: ScheduleState, spec: ScheduleSpec, options: ScheduleOptions) -> bool:
    """Whether a tick of this schedule may be decided before it is due: only when the decision
    cannot change in between (it reads no runs: concurrency allow, no `dependsOnPast`) and
    the tick's run is a leaf (a DAG or matrix would start its children at once)."""
    return not reads_runs(spec, options.concurrency) and container_of(state.spec or {}) is None


@dataclass
class _Decided:
    key: OpKey
    state: ScheduleState
    options: ScheduleOptions
    decision: TickDecision


def fire(ctx: Context, operation_ids: Sequence[int], now: dt.datetime, ahead: dt.timedelta = dt.timedelta(0)) -> Batch:
    """Decide the due ticks of these schedules and record what the decisions imply, in one
    transaction. A schedule that is not due any more (another daemon or call handled it) is left
    as it is.

    A schedule whose next tick is due within `ahead` of `now` is decided as of that tick when it
    may be (`early`): the tick is claimed and its run recorded now, and the run is returned with
    `not_before` set to the tick, so the daemon creates its object when the tick is due, not
    before. The others wait until they are due."""
    parts: list[Work] = []
    wakeups: dict[OpKey, dt.datetime | None] = {}
    moves: list[ScheduleMove] = []
    with ctx.store.unit_of_work() as s:
        pending: list[tuple[OpKey, ScheduleState, ScheduleOptions, ScheduleSpec, dt.datetime]] = []
        for op_key, state in ctx.store.lock_schedules(operation_ids, s):
            if state.next_tick_at is None or state.next_tick_at > now + ahead or state.schedule is None:
                continue
            key = OpKey.parse(op_key)
            # What the repo config said when the schedule was registered: right after a restart,
            # or while fetches fail, the repo config may not have been read yet.
            options = options_of(state, ctx.options_for(key))
            try:
                spec = schedule_spec(state.schedule, options.tz)
            except ValueError as e:  # pydantic's ValidationError and ScheduleError are ValueErrors
                moves.append(ScheduleMove(state.operation_id, state.last_tick_at, None))
                wakeups[key] = None
                parts.append(
                    Work(notices=(Notice(op_key, "InvalidSchedule", f"the schedule cannot be evaluated: {e}"),))
                )
                continue
            # The instant the schedule is decided at: now, or its next tick when it is early.
            at = now
            if state.next_tick_at > now:
                if not early(state, spec, options):
                    continue  # decided when it is due
                at = state.next_tick_at
            pending.append((key, state, options, spec, at))
        runs = ctx.store.schedule_runs(
            [state.operation_id for _, state, options, spec, _ in pending if reads_runs(spec, options.concurrency)], s
        )
        decided = [
            _Decided(
                key,
                state,
                options,
                decide(
                    spec,
                    now=at,
                    registered_at=registered_at(state),
                    last_tick=state.last_tick_at,
                    runs_so_far=state.run_count,
                    runs=[PastRun(name, status) for name, status in runs.get(state.operation_id, ())],
                    concurrency=options.concurrency,
                    starting_deadline=options.starting_deadline,
                ),
            )
            for key, state, options, spec, at in pending
        ]
        claimed = ctx.store.claim_ticks([row for d in decided for row in _tick_rows(d)], now, s)
        # The runs of the claimed ticks, recorded together (the applier's `record_many`: a few
        # statements for the batch, the fence asked once per repo), in the claims' transaction.
        recordings: list[tuple[_Decided, dt.datetime, Recording]] = []
        for d in decided:
            oid, decision = d.state.operation_id, d.decision
            if (skipped := decision.skipped) is not None and (oid, skipped.at) in claimed:
                request = tick_request(d.key, d.state, skipped.at, d.options)
                final = (Status.SKIPPED, skipped.reason, skipped.message)
                recordings.append((d, skipped.at, Recording(request, final=final)))
            if decision.fire is not None and (oid, decision.fire) in claimed:
                request = tick_request(d.key, d.state, decision.fire, d.options)
                recordings.append((d, decision.fire, Recording(request)))
        recorded: dict[tuple[int, dt.datetime], tuple[Recording, Run, bool]] = {}
        results = ctx.record_many([item for _, _, item in recordings], now, session=s)
        for (d, at, item), result in zip(recordings, results, strict=True):
            if isinstance(result, TrackingError):
                raise result  # the whole batch rolls back; the next pass decides it again
            recorded[(d.state.operation_id, at)] = (item, *result)
        links: list[tuple[int, dt.datetime, int]] = []
        for d in decided:
            oid, decision = d.state.operation_id, d.decision
            missed, skipped = decision.missed, decision.skipped
            if missed is not None and (oid, missed.first) in claimed:
                span = f"from {missed.first.isoformat()} to {missed.last.isoformat()}"
                text = f"{missed.count} tick(s) {span} {missed.reason}"
                parts.append(Work(notices=(Notice(str(d.key), "MissedTicks", text),)))
            if skipped is not None and (oid, skipped.at) in claimed:
                _, run, _ = recorded[(oid, skipped.at)]
                assert run.id is not None
                links.append((oid, skipped.at, run.id))
            fired = decision.fire is not None and (oid, decision.fire) in claimed
            if decision.fire is not None and fired:
                item, run, new = recorded[(oid, decision.fire)]
                assert run.id is not None
                links.append((oid, decision.fire, run.id))
                launched = tree.launched(ctx, s, item.request, run, new, now=now)
                # Recorded new just now: started without being read again, and not before its tick.
                not_before = decision.fire if decision.fire > now else None
                launched = dataclasses.replace(
                    launched,
                    new_runs=tuple(
                        dataclasses.replace(n, not_before=not_before, fresh=True) for n in launched.new_runs
                    ),
                )
                parts += (launched, Work(stops=decision.stop))
            nxt = None if decision.finished else decision.next_wakeup
            last = decision.handled_until if decision.handled_until is not None else d.state.last_tick_at
            moves.append(ScheduleMove(oid, last, nxt, 1 if fired else 0))
            wakeups[d.key] = nxt
        ctx.store.attach_tick_runs(links, s)
        ctx.store.advance_schedules(moves, now, s)
    return Batch(Work.merge(parts), wakeups)


def _tick_rows(d: _Decided) -> list[TickRow]:
    """The tick rows a decision writes: missed ones, a skipped one, the fired one."""
    oid, decision, rows = d.state.operation_id, d.decision, []
    if (missed := decision.missed) is not None:
        rows.append(
            TickRow(
                oid,
                missed.first,
                "missed",
                "Missed",
                missed.reason,
                missed_until=missed.last,
                missed_count=missed.count,
            )
        )
    if (skipped := decision.skipped) is not None:
        rows.append(TickRow(oid, skipped.at, "skipped", skipped.reason, skipped.message))
    if decision.fire is not None:
        rows.append(TickRow(oid, decision.fire))
    return rows


__all__ = ["TICK_BATCH", "TICK_LEAD", "Batch", "due", "early", "fire", "tick_request"]
