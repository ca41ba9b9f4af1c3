"""The shared session helper every aggregate module of the tracking DB builds on.

A `Database` holds the engine and opens units of work. Each aggregate (repos and operations, runs,
the outbox, schedules, subscriptions, webhook deliveries) is a mixin over it in a module of its
own; `Store` composes them. Writes that must happen together share one transaction: every method
takes an optional `session`, and `unit_of_work()` opens one; without a session a method runs in
its own short transaction. "Insert, or do nothing on conflict" is `insert_ignore`, written once.

Every time is passed in (`now`, `at`): nothing in the tracking package reads the clock.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from reconciler.tracking.engine import READ_ONLY, create_engine_for, sqlite_path

APSCHEDULER_TABLE = "apscheduler_jobs"

_ROWS_PER_INSERT = 500

# A unit of work as the other packages see it: an opaque handle they pass back to the store.
Tx = Session


def table(model: type[SQLModel]) -> Any:
    """The Core table of a model (sqlmodel types `__table__` loosely)."""
    return model.__table__  # type: ignore[attr-defined]


def _file_identity(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read_engine = engine.execution_options(**{READ_ONLY: True})
        # The SQLite file as opened: deleted or replaced under us, open connections would go on
        # writing to a file nobody will ever read again (see `write_problem`).
        self._sqlite_file = sqlite_path(engine.url)
        self._sqlite_identity = _file_identity(self._sqlite_file)

    @classmethod
    def open(cls, url: str) -> Self:
        return cls(create_engine_for(url))

    def close(self) -> None:
        self.engine.dispose()

    def job_store(self) -> Any:
        """APScheduler 3's job store on this database (its table is created by migration 0004)."""
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        return SQLAlchemyJobStore(engine=self.engine, tablename=APSCHEDULER_TABLE)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction for several writes: committed on exit, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _tx(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
            return
        with self.unit_of_work() as own:
            yield own

    @contextmanager
    def _read(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
            return
        with Session(self._read_engine, expire_on_commit=False) as own, own.begin():
            yield own

    def insert_ignore(
        self, session: Session, model: type[SQLModel], values: Mapping[str, Any], conflict: Sequence[str] = ()
    ) -> bool:
        """Insert a row unless it collides with a unique constraint; True when inserted.

        `conflict` names the columns of the constraint that makes the insert a no-op; left empty,
        any unique constraint does (callers then tell which one by reading back).
        """
        return bool(self.insert_ignore_rows(session, model, [values], conflict))

    def insert_ignore_rows(
        self,
        session: Session,
        model: type[SQLModel],
        rows: Sequence[Mapping[str, Any]],
        conflict: Sequence[str] = (),
        returning: Sequence[str] = (),
    ) -> list[Any]:
        """`insert_ignore` for many rows (all with the same keys), a few statements in all: the
        `returning` columns (default: the primary key) of the rows that went in, in no set order."""
        if not rows:
            return []
        table_ = table(model)
        columns = [table_.c[name] for name in returning] or list(table_.primary_key.columns)
        inserted: list[Any] = []
        # Bounded statements: SQLite takes at most 32,766 bound values, PostgreSQL 65,535.
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            # One row as keywords: SQLAlchemy caches that statement, not a one-row VALUES list.
            values: Any = [dict(row) for row in chunk] if len(chunk) > 1 else dict(chunk[0])
            if self.dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                pg = pg_insert(table_).values(values)
                stmt: Any = pg.on_conflict_do_nothing(index_elements=list(conflict) or None)
            else:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                lite = sqlite_insert(table_).values(values)
                stmt = lite.on_conflict_do_nothing(index_elements=list(conflict) or None)
            # RETURNING says which rows went in; rowcount is not reliable across drivers here.
            inserted += session.connection().execute(stmt.returning(*columns)).all()
        return inserted

    def write_problem(self, now: dt.datetime) -> str | None:
        """Why the database does not take writes now (None: it does). For `/readyz`.

        A row is written and removed in one committed transaction, so a full disk, a read-only
        file or a lost server shows. For SQLite, the file must also still be the one opened.
        """
        from reconciler.tracking.tables import WebhookDelivery

        if self._sqlite_file is not None:
            current = _file_identity(self._sqlite_file)
            if current is None:
                return f"the database file {self._sqlite_file} is gone"
            if self._sqlite_identity is None:
                self._sqlite_identity = current
            elif current != self._sqlite_identity:
                return f"the database file {self._sqlite_file} was replaced since it was opened"
        d = table(WebhookDelivery).c
        probe = f"probe-{uuidlib.uuid4().hex}"  # several daemons may probe one database at once
        try:
            with self.unit_of_work() as s:
                s.execute(insert(table(WebhookDelivery)).values(provider="readyz", delivery_id=probe, received_at=now))
                s.execute(table(WebhookDelivery).delete().where(d.provider == "readyz", d.delivery_id == probe))
        except Exception as e:
            return f"a write failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return None
