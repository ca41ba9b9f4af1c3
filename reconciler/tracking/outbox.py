"""The commit-status outbox: rows written with the state change they report, claimed by posters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, exists, func, insert, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from reconciler.statuses import (
    CommitState,
)
from reconciler.tracking.db import Database, table
from reconciler.tracking.errors import NotFound
from reconciler.tracking.tables import (
    OutboxEntry,
)

_t = table


def _not_indexed(column: Any) -> Any:
    """`column` as an expression no index serves, so the pending rows' partial index is used.

    Without statistics SQLite takes `repo IN (...)` (or a GROUP BY repo) to the (repo, sha,
    context) index, which holds every status ever posted: each claim would read a repo's whole
    history instead of the few rows that wait.
    """
    return column.concat("")


@dataclass(frozen=True)
class OutboxBacklog:
    """Statuses of one repo still waiting for its forge: how many, and since when."""

    repo: str
    pending: int
    oldest_created_at: dt.datetime


class OutboxMixin(Database):
    def enqueue_commit_status(
        self,
        *,
        repo: str,
        sha: str,
        context: str,
        state: CommitState,
        now: dt.datetime,
        description: str | None = None,
        target_url: str | None = None,
        session: Session | None = None,
    ) -> bool:
        """Queue a commit status; False when the newest queued state of (repo, sha, context) is this one.

        Pass the session of the state change that caused it, so both commit or neither does. A
        state that repeats after another (success -> failure -> success) is queued again: the
        forge must end on the latest state. Asking twice for the state already newest (a commit
        validated at every poll) queues nothing.
        """
        o = _t(OutboxEntry).c
        with self._tx(session) as s:
            newest = s.execute(
                select(o.state, o.description, o.target_url)
                .where(o.repo == repo, o.sha == sha, o.context == context)
                .order_by(o.id.desc())
                .limit(1)
            ).first()
            if newest is not None and (CommitState(newest.state), newest.description, newest.target_url) == (
                state,
                description,
                target_url,
            ):
                return False
            s.execute(
                insert(_t(OutboxEntry)).values(
                    repo=repo,
                    sha=sha,
                    context=context,
                    state=state,
                    description=description,
                    target_url=target_url,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            return True

    def _postable(self, now: dt.datetime, repos: Collection[str] | None = None) -> ColumnElement[bool]:
        """Rows worth posting at `now`: due, unclaimed, newest of their (repo, sha, context), none in
        flight; only rows of `repos` when given (the repos of one forge)."""
        o = _t(OutboxEntry)
        n = o.alias("newer")
        f = o.alias("in_flight")
        newer = exists().where(
            n.c.repo == o.c.repo,
            n.c.sha == o.c.sha,
            n.c.context == o.c.context,
            n.c.id > o.c.id,
            n.c.superseded_at.is_(None),
        )
        in_flight = exists().where(
            f.c.repo == o.c.repo,
            f.c.sha == o.c.sha,
            f.c.context == o.c.context,
            f.c.id != o.c.id,
            f.c.posted_at.is_(None),
            f.c.superseded_at.is_(None),
            f.c.claimed_until > now,
        )
        return and_(
            o.c.posted_at.is_(None),
            o.c.superseded_at.is_(None),
            o.c.next_attempt_at <= now,
            or_(o.c.claimed_until.is_(None), o.c.claimed_until <= now),
            *([_not_indexed(o.c.repo).in_(sorted(repos))] if repos is not None else []),
            ~newer,
            ~in_flight,
        )

    def pending_outbox(
        self, now: dt.datetime, limit: int | None = None, session: Session | None = None
    ) -> list[OutboxEntry]:
        """What a poster would claim at `now`, oldest due first (without claiming it)."""
        c = _t(OutboxEntry).c
        stmt = select(OutboxEntry).where(self._postable(now)).order_by(c.next_attempt_at, c.id).limit(limit)
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())

    def claim_outbox(
        self,
        limit: int,
        now: dt.datetime,
        lease: dt.timedelta = dt.timedelta(minutes=5),
        session: Session | None = None,
        *,
        repos: Collection[str] | None = None,
    ) -> list[OutboxEntry]:
        """Claim up to `limit` postable rows (of `repos`, when given) for `lease`; each claim
        counts as an attempt until `mark_failed(..., sent=False)` takes it back.

        Two daemons never get the same row: PostgreSQL skips rows another transaction holds,
        SQLite runs one writing transaction at a time (`BEGIN IMMEDIATE`), and a committed claim
        is excluded by `claimed_until` until the lease runs out (so rows of a poster that died
        come back). The lease must outlast the forge call's timeout. Posters of different forges
        pass disjoint `repos`, so one forge's rows never wait behind another's.
        """
        o = _t(OutboxEntry)
        ids_stmt = (
            select(o.c.id)
            .where(self._postable(now, repos))
            .order_by(o.c.next_attempt_at, o.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._tx(session) as s:
            ids = [int(i) for i in s.execute(ids_stmt).scalars()]
            if not ids:
                return []
            s.connection().execute(
                update(o).where(o.c.id.in_(ids)).values(claimed_until=now + lease, attempts=o.c.attempts + 1)
            )
            rows = s.execute(
                select(OutboxEntry)
                .where(o.c.id.in_(ids))
                .order_by(o.c.next_attempt_at, o.c.id)
                # Rows this session loaded before the Core update must show the claim too.
                .execution_options(populate_existing=True)
            ).scalars()
            return list(rows)

    def mark_posted(self, entry_id: int, at: dt.datetime, session: Session | None = None) -> None:
        """The forge accepted the row: done, and older unposted states of its (repo, sha, context) retire."""
        o = _t(OutboxEntry)
        with self._tx(session) as s:
            row = s.execute(select(o.c.repo, o.c.sha, o.c.context).where(o.c.id == entry_id)).one_or_none()
            if row is None:
                raise NotFound(f"outbox row {entry_id} does not exist")
            conn = s.connection()
            conn.execute(update(o).where(o.c.id == entry_id).values(posted_at=at, claimed_until=None, last_error=None))
            conn.execute(
                update(o)
                .where(
                    o.c.repo == row.repo,
                    o.c.sha == row.sha,
                    o.c.context == row.context,
                    o.c.id < entry_id,
                    o.c.posted_at.is_(None),
                    o.c.superseded_at.is_(None),
                )
                .values(superseded_at=at, claimed_until=None)
            )

    def mark_failed(
        self,
        entry_id: int,
        next_attempt: dt.datetime,
        error: str,
        session: Session | None = None,
        *,
        sent: bool = True,
    ) -> None:
        """Posting failed: release the claim and try again at `next_attempt`.

        `sent=False` says nothing reached the forge (the connection was refused, the forge
        refused before acting, or the row was held back unsent): the claim is taken back from
        `attempts`, which so counts only the claims that may have reached the forge.
        """
        o = _t(OutboxEntry)
        attempts = o.c.attempts if sent else case((o.c.attempts > 0, o.c.attempts - 1), else_=0)
        with self._tx(session) as s:
            result: CursorResult[Any] = s.connection().execute(
                update(o)
                .where(o.c.id == entry_id, o.c.posted_at.is_(None))
                .values(next_attempt_at=next_attempt, claimed_until=None, last_error=error, attempts=attempts)
            )
            if result.rowcount != 1:
                raise NotFound(f"outbox row {entry_id} does not exist or was already posted")

    def retry_outbox_now(
        self,
        repos: Collection[str],
        now: dt.datetime,
        *,
        unless_error_startswith: str | None = None,
        session: Session | None = None,
    ) -> int:
        """Make the waiting rows of `repos` due at `now` (their forge answers again); returns how many.

        Rows in flight are left alone, and so are rows whose last error starts with
        `unless_error_startswith` (refused for a reason of their own, which a forge coming back
        does not mend).
        """
        if not repos:
            return 0
        o = _t(OutboxEntry)
        conditions = [
            _not_indexed(o.c.repo).in_(sorted(repos)),
            o.c.posted_at.is_(None),
            o.c.superseded_at.is_(None),
            or_(o.c.claimed_until.is_(None), o.c.claimed_until <= now),
            o.c.next_attempt_at > now,
        ]
        if unless_error_startswith:
            conditions.append(
                or_(o.c.last_error.is_(None), ~o.c.last_error.startswith(unless_error_startswith, autoescape=True))
            )
        with self._tx(session) as s:
            result: CursorResult[Any] = s.connection().execute(update(o).where(*conditions).values(next_attempt_at=now))
            return int(result.rowcount)

    def outbox_backlog(self, session: Session | None = None) -> list[OutboxBacklog]:
        """Per repo, the statuses not posted yet (nor replaced by a newer state) and the oldest one's age."""
        o = _t(OutboxEntry).c
        repo = _not_indexed(o.repo)
        stmt = (
            select(repo, func.count(), func.min(o.created_at))
            .where(o.posted_at.is_(None), o.superseded_at.is_(None))
            .group_by(repo)
            .order_by(repo)
        )
        with self._read(session) as s:
            return [OutboxBacklog(repo, int(count), oldest) for repo, count, oldest in s.execute(stmt).all()]

    def coalesce_outbox(
        self, now: dt.datetime, session: Session | None = None, *, repos: Collection[str] | None = None
    ) -> int:
        """Retire unposted states that a newer state of the same (repo, sha, context) replaced
        (of `repos`, when given).

        Rows still in flight are left alone. Returns how many rows were retired.
        """
        o = _t(OutboxEntry)
        n = o.alias("newer")
        newer = exists().where(
            n.c.repo == o.c.repo,
            n.c.sha == o.c.sha,
            n.c.context == o.c.context,
            n.c.id > o.c.id,
            n.c.superseded_at.is_(None),
        )
        stmt = (
            update(o)
            .where(
                o.c.posted_at.is_(None),
                o.c.superseded_at.is_(None),
                or_(o.c.claimed_until.is_(None), o.c.claimed_until <= now),
                *([_not_indexed(o.c.repo).in_(sorted(repos))] if repos is not None else []),
                newer,
            )
            .values(superseded_at=now)
        )
        with self._tx(session) as s:
            result: CursorResult[Any] = s.connection().execute(stmt)
            return int(result.rowcount)

    def outbox(
        self, sha: str | None = None, session: Session | None = None, *, repo: str | None = None
    ) -> list[OutboxEntry]:
        """All outbox rows (of one sha, of one repo), in insertion order: for the read API and tests."""
        c = _t(OutboxEntry).c
        stmt = select(OutboxEntry).order_by(c.id)
        if sha is not None:
            stmt = stmt.where(c.sha == sha)
        if repo is not None:
            stmt = stmt.where(c.repo == repo)
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())
