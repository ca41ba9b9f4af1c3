"""Steps of a reconcile that a child process performs before dying with `os._exit`.

`os._exit` skips every cleanup (no rollback, no commit, no connection close), as a kill -9 or
a power cut would; the parent then replays the whole sequence as a restarted daemon would.
"""

from __future__ import annotations

import datetime as dt
import os

from reconciler.model import Cause
from reconciler.statuses import CommitState, Status
from reconciler.tracking import ScheduleMove, Store, TickRow, Tx

CRASH_EXIT = 17
OP = "r:a.yaml#a"


def create_run(store: Store, now: dt.datetime, session: object = None) -> None:
    store.create_run(
        op_key=OP,
        cause=Cause.COMMIT,
        cause_id="c1",
        name="a-h-c1",
        spec_hash="h",
        backend="local",
        commit_sha="c1",
        now=now,
        session=session,  # type: ignore[arg-type]
    )


def start_and_report(store: Store, now: dt.datetime, session: object) -> None:
    store.transition("a-h-c1", Status.RUNNING, at=now, reason="Started", session=session)  # type: ignore[arg-type]
    store.enqueue_commit_status(
        repo="r",
        sha="c1",
        context="polyaxon/a",
        state=CommitState.PENDING,
        now=now,
        session=session,  # type: ignore[arg-type]
    )


def claim_tick(store: Store, at: dt.datetime, now: dt.datetime, session: Tx) -> bool:
    """Claim the fired tick at `at` and move the schedule to the next hour, as a tick batch does
    (`orchestration.ticking.fire`); True for the caller that fired it."""
    [(_, state)] = store.lock_schedules([store.op_id(OP, session=session) or 0], session)
    fired = (state.operation_id, at) in store.claim_ticks([TickRow(state.operation_id, at)], now, session)
    store.advance_schedules(
        [ScheduleMove(state.operation_id, at, at + dt.timedelta(hours=1), 1 if fired else 0)], now, session
    )
    return fired


def crash_after_create(url: str, now: dt.datetime) -> None:
    """Step 1 commits, the process dies before step 2."""
    store = Store.open(url)
    create_run(store, now)
    os._exit(CRASH_EXIT)


def crash_inside_unit_of_work(url: str, now: dt.datetime) -> None:
    """Step 2 is half done (status written, outbox row written) when the process dies."""
    store = Store.open(url)
    with store.unit_of_work() as tx:
        start_and_report(store, now, tx)
        tx.flush()
        os._exit(CRASH_EXIT)


def crash_after_tick_before_commit(url: str, now: dt.datetime) -> None:
    """The tick is claimed and its run recorded in one transaction; death before commit."""
    store = Store.open(url)
    with store.unit_of_work() as tx:
        claim_tick(store, now, now, tx)
        store.create_run(
            op_key=OP,
            cause=Cause.SCHEDULE,
            cause_id=now.isoformat(),
            name="a-h-tick",
            spec_hash="h",
            backend="local",
            now=now,
            status=Status.ON_SCHEDULE,
            session=tx,
        )
        tx.flush()
        os._exit(CRASH_EXIT)
