"""The APScheduler wake-up timer on a real SQLite tracking DB: it wakes the daemon at a schedule's
next tick, its jobs survive a restart (a wake-up missed while down runs at start), and the
orchestrator keeps one job per registered schedule."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.model import OpKey
from reconciler.orchestration import Timer
from reconciler.orchestration.timer import TABLE
from reconciler.tracking import Store, upgrade
from tests.infra.wait import wait_until
from tests.integration.orchestration.conftest import T0
from tests.integration.orchestration.helpers import Daemon

KEY = OpKey("r", "ops/n.yaml", "n")


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'tracking.db'}"
    upgrade(url)
    store = Store.open(url)
    store.ensure_repo("r", "file:///srv/r.git", "main", T0)
    try:
        yield store
    finally:
        store.close()


def stored_jobs(store: Store) -> dict[str, float]:
    with store.engine.connect() as conn:
        return {row.id: row.next_run_time for row in conn.execute(sa.text(f"SELECT id, next_run_time FROM {TABLE}"))}


def test_the_timer_wakes_at_the_time_asked(sqlite_store: Store) -> None:
    woke = threading.Event()
    timer = Timer(sqlite_store.engine, woke.set)
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
    first = Timer(sqlite_store.engine, lambda: None)
    first.start()
    when = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=500)
    try:
        first.reschedule(KEY, when)
    finally:
        first.stop()  # down before the wake-up
    assert list(stored_jobs(sqlite_store)) == [f"schedule:{KEY}"]
    wait_until(lambda: dt.datetime.now(dt.UTC) > when, what="the wake-up time passes while down")

    woke = threading.Event()
    second = Timer(sqlite_store.engine, woke.set)
    second.start()
    try:
        assert woke.wait(timeout=10)
    finally:
        second.stop()


def test_the_orchestrator_keeps_one_job_per_schedule(sqlite_store: Store) -> None:
    timer = Timer(sqlite_store.engine, lambda: None)
    timer.start()
    try:
        daemon = Daemon(sqlite_store)
        daemon.orch = daemon.orchestrator(timer=timer)
        files = {
            "ops/n.yaml": "version: 1.1\nkind: operation\nname: n\nschedule: {kind: cron, cron: '0 * * * *'}\n"
            "component: {run: {kind: job, container: {image: busybox}}}\n"
        }
        # In the future, so the running timer holds the jobs rather than firing them.
        base = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
        hour = dt.timedelta(hours=1)
        daemon.apply_git(files, "c1", base)
        assert timer.wakeups() == {str(KEY): base + hour}
        daemon.orch.due(base + hour)
        assert timer.wakeups() == {str(KEY): base + 2 * hour}
        daemon.apply_git({}, "c2", base + hour)
        assert timer.wakeups() == {} and stored_jobs(sqlite_store) == {}
    finally:
        timer.stop()
