"""The APScheduler wake-up timer over the tracking DB: it wakes the daemon at the time asked, keeps
the earliest of the times asked for, its job survives a restart (a wake-up missed while down runs
at start), and the production daemon keeps one job, at its schedules' earliest next tick."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.model import OpKey
from reconciler.orchestration import Timer
from reconciler.orchestration.ticking import TICK_LEAD
from reconciler.orchestration.timer import JOB_ID
from reconciler.tracking import Store, upgrade
from reconciler.tracking.db import APSCHEDULER_TABLE as TABLE
from tests.infra.daemon import daemon_harness
from tests.infra.git_server import GitRepoFactory
from tests.infra.wait import wait_until

KEY = OpKey("r", "ops/n.yaml", "n")


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'tracking.db'}"
    upgrade(url)
    store = Store.open(url)
    try:
        yield store
    finally:
        store.close()


def stored_jobs(store: Store) -> dict[str, float]:
    with store.engine.connect() as conn:
        return {row.id: row.next_run_time for row in conn.execute(sa.text(f"SELECT id, next_run_time FROM {TABLE}"))}


def test_the_timer_wakes_at_the_time_asked(sqlite_store: Store) -> None:
    woke = threading.Event()
    timer = Timer(sqlite_store.job_store(), woke.set)
    timer.start()
    try:
        when = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=300)
        timer.wake_by(when)
        assert JOB_ID in stored_jobs(sqlite_store)
        assert woke.wait(timeout=10)
        assert dt.datetime.now(dt.UTC) >= when
        wait_until(lambda: not stored_jobs(sqlite_store), what="the fired one-shot job leaves the table")
    finally:
        timer.stop()


def test_a_wake_up_due_while_down_runs_at_the_next_start(sqlite_store: Store) -> None:
    first = Timer(sqlite_store.job_store(), lambda: None)
    first.start()
    when = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=500)
    try:
        first.wake_by(when)
    finally:
        first.stop()  # down before the wake-up
    assert list(stored_jobs(sqlite_store)) == [JOB_ID]
    wait_until(lambda: dt.datetime.now(dt.UTC) > when, what="the wake-up time passes while down")

    woke = threading.Event()
    second = Timer(sqlite_store.job_store(), woke.set)
    second.start()
    try:
        assert woke.wait(timeout=10)
    finally:
        second.stop()


def test_the_earliest_wake_up_asked_for_is_kept(sqlite_store: Store) -> None:
    timer = Timer(sqlite_store.job_store(), lambda: None)
    timer.start()
    base = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)  # far enough that nothing fires
    try:
        timer.wake_by(base + dt.timedelta(minutes=5))
        timer.wake_by(base + dt.timedelta(minutes=9))  # later: the earlier one stays
        timer.wake_by(None)  # nothing to wake for: no change
        assert timer.wakeup() == base + dt.timedelta(minutes=5)
        timer.wake_by(base + dt.timedelta(minutes=1))
        assert timer.wakeup() == base + dt.timedelta(minutes=1)
        timer.fire()  # as when the job runs: the next time asked for is taken, whatever it is
        timer.wake_by(base + dt.timedelta(minutes=7))
        assert timer.wakeup() == base + dt.timedelta(minutes=7)
        assert list(stored_jobs(sqlite_store)) == [JOB_ID]
    finally:
        timer.stop()


def test_a_start_drops_the_jobs_of_releases_that_kept_one_per_schedule(sqlite_store: Store) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger

    from reconciler.orchestration.timer import _wake

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    old = BackgroundScheduler(jobstores={"default": sqlite_store.job_store()}, timezone=dt.UTC)
    old.start(paused=True)
    old.add_job(_wake, trigger=DateTrigger(run_date=later, timezone=dt.UTC), id=f"schedule:{KEY}")
    old.shutdown(wait=True)
    assert list(stored_jobs(sqlite_store)) == [f"schedule:{KEY}"]
    timer = Timer(sqlite_store.job_store(), lambda: None)
    timer.start()
    try:
        assert stored_jobs(sqlite_store) == {}
    finally:
        timer.stop()


def test_the_daemon_keeps_one_timer_job_at_the_earliest_next_tick(
    db_url: str, tmp_path: Path, git_repo_factory: GitRepoFactory
) -> None:
    def op(name: str, cron: str) -> dict[str, str]:
        return {
            f"ops/{name}.yaml": f"version: 1.1\nkind: operation\nname: {name}\n"
            f"schedule: {{kind: cron, cron: '{cron}'}}\n"
            "component: {run: {kind: job, container: {image: busybox}}}\n"
        }

    hourly, at_half_past = op("n", "0 * * * *"), op("m", "30 * * * *")
    # In the future, so the running timer holds the job rather than firing it.
    base = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    hour, half = dt.timedelta(hours=1), dt.timedelta(minutes=30)
    lead = TICK_LEAD  # the timer wakes the daemon this long before a tick, to decide it ahead
    with daemon_harness(tmp_path, db_url, git_repo_factory, start=base, timer=True) as h:
        timer = h.daemon.orchestration.timer
        assert timer is not None
        timer.start()
        h.apply_git(hourly, base)
        assert timer.wakeup() == base + hour - lead
        h.apply_git({**hourly, **at_half_past}, base + dt.timedelta(minutes=10))
        assert timer.wakeup() == base + half - lead  # the new schedule ticks first
        timer.fire()  # as the job does at base + 30 min
        h.fire_ticks(base + half)
        assert timer.wakeup() == base + hour - lead
        timer.fire()
        h.fire_ticks(base + hour)
        assert timer.wakeup() == base + hour + half - lead
        assert list(stored_jobs(h.store)) == [JOB_ID]
        # A restarted daemon finds its wake-up in the database.
        h.restart()
        restarted = h.daemon.orchestration.timer
        assert restarted is not None and restarted is not timer
        timer.stop()
        restarted.start()
        h.daemon.orchestration.arm_timer()
        assert restarted.wakeup() == base + hour + half - lead
