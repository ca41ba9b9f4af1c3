"""The APScheduler wake-up timer over the tracking DB: it wakes the daemon at a schedule's next
tick, its jobs survive a restart (a wake-up missed while down runs at start), and the production
daemon keeps one job per registered schedule."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.model import OpKey
from reconciler.orchestration import Timer
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
        timer.reschedule(KEY, when)
        assert f"schedule:{KEY}" in stored_jobs(sqlite_store)
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
        first.reschedule(KEY, when)
    finally:
        first.stop()  # down before the wake-up
    assert list(stored_jobs(sqlite_store)) == [f"schedule:{KEY}"]
    wait_until(lambda: dt.datetime.now(dt.UTC) > when, what="the wake-up time passes while down")

    woke = threading.Event()
    second = Timer(sqlite_store.job_store(), woke.set)
    second.start()
    try:
        assert woke.wait(timeout=10)
    finally:
        second.stop()


def test_the_daemon_keeps_one_timer_job_per_schedule(
    db_url: str, tmp_path: Path, git_repo_factory: GitRepoFactory
) -> None:
    files = {
        "ops/n.yaml": "version: 1.1\nkind: operation\nname: n\nschedule: {kind: cron, cron: '0 * * * *'}\n"
        "component: {run: {kind: job, container: {image: busybox}}}\n"
    }
    # In the future, so the running timer holds the jobs rather than firing them.
    base = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    hour = dt.timedelta(hours=1)
    with daemon_harness(tmp_path, db_url, git_repo_factory, start=base, timer=True) as h:
        timer = h.daemon.orchestration.timer
        assert timer is not None
        timer.start()
        h.apply_git(files, base)
        assert timer.wakeups() == {str(KEY): base + hour}
        h.fire_ticks(base + hour)
        assert timer.wakeups() == {str(KEY): base + 2 * hour}
        # A restarted daemon finds its wake-ups in the database.
        h.restart()
        restarted = h.daemon.orchestration.timer
        assert restarted is not None and restarted is not timer
        timer.stop()
        restarted.start()
        h.daemon.orchestration.arm_timer()
        assert restarted.wakeups() == {str(KEY): base + 2 * hour}
        h.apply_git({}, base + hour)
        assert restarted.wakeups() == {} and stored_jobs(h.store) == {}
