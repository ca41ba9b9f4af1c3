"""A process killed between (or inside) steps; the restarted one replays and nothing doubles."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Callable

from reconciler.model import Cause
from reconciler.statuses import CommitState, Status
from reconciler.tracking import Store

from . import crash_worker as w

S = dt.timedelta(seconds=1)


def run_and_crash(target: Callable[[str, dt.datetime], None], url: str, now: dt.datetime) -> None:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=target, args=(url, now))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == w.CRASH_EXIT, f"the worker should have crashed, exited {proc.exitcode}"


def replay(store: Store, now: dt.datetime) -> None:
    """What a restarted daemon does: the whole sequence again, from the top."""
    with store.unit_of_work() as tx:
        w.create_run(store, now, session=tx)
    with store.unit_of_work() as tx:
        w.start_and_report(store, now + S, tx)


def assert_done_once(store: Store) -> None:
    [run] = store.runs_by_op(w.OP)
    assert run.name == "a-h-c1" and run.status == Status.RUNNING
    assert [c.status for c in store.history(run)] == [Status.CREATED, Status.RUNNING]
    assert [(r.sha, r.state) for r in store.outbox()] == [("c1", CommitState.PENDING)]


def test_crash_between_create_and_start(db_url: str, seeded: Store, now: dt.datetime) -> None:
    run_and_crash(w.crash_after_create, db_url, now)
    [run] = seeded.runs_by_op(w.OP)  # step 1 survived
    assert run.status == Status.CREATED
    replay(seeded, now)
    replay(seeded, now + 2 * S)  # and a second restart changes nothing more
    assert_done_once(seeded)


def test_crash_inside_a_unit_of_work_leaves_nothing_half_done(db_url: str, seeded: Store, now: dt.datetime) -> None:
    w.create_run(seeded, now)
    run_and_crash(w.crash_inside_unit_of_work, db_url, now + S)
    # The dead transaction neither committed nor holds locks: the restart can write at once.
    [run] = seeded.runs_by_op(w.OP)
    assert run.status == Status.CREATED
    assert seeded.outbox() == []
    assert len(seeded.history(run)) == 1
    replay(seeded, now)
    assert_done_once(seeded)


def test_crash_while_firing_a_tick_neither_drops_nor_doubles_it(db_url: str, seeded: Store, now: dt.datetime) -> None:
    seeded.set_schedule(w.OP, now, now - S)
    run_and_crash(w.crash_after_tick_before_commit, db_url, now)
    assert [t.tick_at for t in seeded.due_ticks(now)] == [now]  # still due: not dropped
    for _restart in range(2):
        with seeded.unit_of_work() as tx:
            if w.claim_tick(seeded, now, now + S, tx):
                seeded.create_run(
                    op_key=w.OP,
                    cause=Cause.SCHEDULE,
                    cause_id=now.isoformat(),
                    name="a-h-tick",
                    spec_hash="h",
                    backend="local",
                    now=now + S,
                    status=Status.ON_SCHEDULE,
                    session=tx,
                )
    assert [r.name for r in seeded.runs_by_op(w.OP)] == ["a-h-tick"]
    state = seeded.schedule_state(w.OP)
    assert state is not None and state.run_count == 1 and state.last_tick_at == now
    assert seeded.due_ticks(now + S) == []
