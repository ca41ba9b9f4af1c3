"""Hand-offs between replicas: work that reached one replica for a repo another one owns.

A replica that receives a verified webhook (or an API request) for a repo it does not own writes
a row for the owner and, on PostgreSQL, `NOTIFY reconciler_handoff` in the same transaction. The
owner waits on `LISTEN` (`HandoffListener`) and takes the rows of the repos it owns; taking
deletes them (`FOR UPDATE SKIP LOCKED`, so two replicas never take one row). A row for a repo
whose owner is gone waits for the next owner.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from reconciler.tracking.db import Database, table
from reconciler.tracking.tables import Handoff

CHANNEL = "reconciler_handoff"


class HandoffsMixin(Database):
    def hand_off(
        self,
        repo: str,
        kind: str,
        payload: Mapping[str, Any],
        sender: str,
        now: dt.datetime,
        session: Session | None = None,
    ) -> int:
        """Queue `kind` work for the owner of `repo` and wake it; returns the row's id."""
        h = table(Handoff)
        with self._tx(session) as s:
            row = s.execute(
                insert(h)
                .values(repo=repo, kind=kind, payload=dict(payload), sender=sender, created_at=now)
                .returning(h.c.id)
            ).scalar_one()
            if self.dialect == "postgresql":
                s.execute(text("SELECT pg_notify(:channel, :repo)"), {"channel": CHANNEL, "repo": repo})
            return int(row)

    def take_handoffs(self, repos: Collection[str], limit: int = 100, session: Session | None = None) -> list[Handoff]:
        """Remove and return the oldest hand-offs for `repos` (rows another replica is taking are
        skipped)."""
        wanted = sorted(set(repos))
        if not wanted:
            return []
        h = table(Handoff)
        pick = select(h.c.id).where(h.c.repo.in_(wanted)).order_by(h.c.id).limit(limit)
        if self.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        with self._tx(session) as s:
            rows = s.execute(delete(h).where(h.c.id.in_(pick.scalar_subquery())).returning(*h.c)).all()
        taken = [Handoff.model_validate(dict(row._mapping)) for row in rows]
        return sorted(taken, key=lambda r: r.id or 0)

    def prune_handoffs(self, before: dt.datetime, session: Session | None = None) -> int:
        """Drop hand-offs nobody took before `before` (a repo no replica is configured for)."""
        h = table(Handoff)
        with self._tx(session) as s:
            result = s.execute(delete(h).where(h.c.created_at < before))
            return int(getattr(result, "rowcount", 0) or 0)

    def announce(self, payload: str, session: Session | None = None) -> None:
        """Wake every replica's listener with `payload` (PostgreSQL; a no-op elsewhere)."""
        if self.dialect != "postgresql":
            return
        with self._tx(session) as s:
            s.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload})

    def handoff_listener(self) -> HandoffListener:
        return HandoffListener(self.engine.url)


class HandoffListener:
    """A connection of its own that `LISTEN`s for hand-offs (PostgreSQL only).

    `wait(timeout)` connects when needed; a broken connection raises and is dropped, so the next
    call connects again. TCP keepalives notice a partition within seconds."""

    def __init__(self, url: URL, connect_timeout: float = 5.0) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._connect_timeout = connect_timeout
        self._conn: Any = None

    def wait(self, timeout: float) -> list[str]:
        """Block up to `timeout` seconds for notifications; their payloads (empty: none came)."""
        import psycopg

        if self._conn is None:
            conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=max(1, round(self._connect_timeout)),
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
            )
            conn.execute(f"LISTEN {CHANNEL}")
            self._conn = conn
        try:
            got = [n.payload for n in self._conn.notifies(timeout=timeout, stop_after=1)]
            # What else arrived meanwhile comes with it.
            got += [n.payload for n in self._conn.notifies(timeout=0)]
            return got
        except psycopg.Error:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection: nothing left to do
                conn.close()


__all__ = ["CHANNEL", "HandoffListener", "HandoffsMixin"]
