"""Two writers racing to finish the same run on PostgreSQL: exactly one wins.

The first writer holds its unit of work open until PostgreSQL reports the second one waiting on
a row lock (polled from pg_stat_activity), so the race really happens, without sleeps.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from reconciler.statuses import Status
from reconciler.tracking import IllegalTransition, Store, upgrade
from tests.infra.postgres import PostgresServer

from .helpers import commit_run

S = dt.timedelta(seconds=1)


@pytest.fixture
def pg_store(postgres_server: PostgresServer, now: dt.datetime) -> Iterator[Store]:
    name = postgres_server.create_database()
    url = postgres_server.url(name)
    upgrade(url)
    store = Store.open(url)
    try:
        store.ensure_repo("r", "file:///srv/r.git", "main", now)
        store.upsert_operation("r:a.yaml#a", "r", "run", now, spec_hash="h")
        yield store
    finally:
        store.close()
        postgres_server.drop_database(name)


def wait_for_lock_waiter(store: Store, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    with store.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.01)
    raise TimeoutError("the second writer never waited on the run's row lock")


@pytest.mark.postgres
def test_only_one_of_two_racing_done_transitions_wins(pg_store: Store, now: dt.datetime) -> None:
    run = commit_run(pg_store, "r:a.yaml#a", "c1", now).run
    outcome: dict[str, object] = {}

    def second_writer() -> None:
        try:
            outcome["change"] = pg_store.transition(run.name, Status.FAILED, at=now + 2 * S)
        except IllegalTransition as exc:
            outcome["error"] = exc

    with pg_store.unit_of_work() as tx:
        pg_store.transition(run.name, Status.SUCCEEDED, at=now + S, session=tx)
        thread = threading.Thread(target=second_writer)
        thread.start()
        wait_for_lock_waiter(pg_store)
    thread.join(timeout=30)
    assert not thread.is_alive()

    error = outcome.get("error")
    assert isinstance(error, IllegalTransition), outcome
    assert error.current == Status.SUCCEEDED
    assert [c.status for c in pg_store.history(run)] == [Status.CREATED, Status.SUCCEEDED]
    stored = pg_store.run(run.name)
    assert stored is not None and stored.status == Status.SUCCEEDED
