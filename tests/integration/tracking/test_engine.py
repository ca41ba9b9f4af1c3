"""Engine settings: SQLite pragmas, readers beside a writer, driver selection."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from reconciler.statuses import Status
from reconciler.tracking import Store, create_engine_for
from reconciler.tracking.engine import normalise_url

from .helpers import commit_run

S = dt.timedelta(seconds=1)


def test_postgres_urls_use_psycopg_3() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="unsupported"):
        normalise_url("mysql://u:secret@h/db")


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path}/sub/dir/x.db")  # parent dirs are created
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(store: Store, now: dt.datetime) -> None:
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO git_commit (repo_id, sha, branch, committed_at, recorded_at, errors)"
                " VALUES (4242, 'c', 'main', :t, :t, '[]')"
            ),
            {"t": now.replace(tzinfo=None)},
        )


def test_readers_do_not_wait_for_a_writer(seeded: Store, now: dt.datetime) -> None:
    run = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    with seeded.unit_of_work() as tx:
        seeded.transition(run.name, Status.RUNNING, at=now + S, session=tx)
        # Another connection reads meanwhile: it sees the committed state, and does not block
        # (on SQLite a read must not take the write lock the open unit of work holds).
        [seen] = seeded.runs_by_op("r:a.yaml#a")
        assert seen.status == Status.CREATED
        assert seeded.latest_status_per_op()["r:a.yaml#a"].status == Status.CREATED
    [seen] = seeded.runs_by_op("r:a.yaml#a")
    assert seen.status == Status.RUNNING
