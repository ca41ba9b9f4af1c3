"""The tracking store: every write and query the other parts make against the tracking DB.

Writes that must happen together (a status change and the commit status it causes) share one
transaction: each method takes an optional `session`, and `Store.unit_of_work()` opens one. Without
a session a method runs in its own short transaction.

Idempotence lives in unique constraints (see `tables`): inserts are "insert, or do nothing on
conflict", then read back, so a retry after a crash finds what the first attempt committed.
On PostgreSQL, rows that several daemons may claim (the outbox) are taken with
`SELECT ... FOR UPDATE SKIP LOCKED`; on SQLite every writing transaction holds the single write
lock from its first statement (see `engine`), which gives the same guarantee by serialising.

Every time is passed in (`now`, `at`): nothing here reads the clock, so tests and the planner
decide what "now" is.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, Select, and_, bindparam, exists, func, insert, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel

from reconciler.statuses import RUNNING, CommitState, Status, is_done, statuses_for_trigger, transition_error
from reconciler.tracking.coltypes import EnumText, UTCDateTime
from reconciler.tracking.engine import READ_ONLY, create_engine_for, sqlite_path
from reconciler.tracking.errors import IllegalTransition, NotFound, RunNameConflict
from reconciler.tracking.tables import (
    CauseKind,
    ConsumedTransition,
    GitCommit,
    Operation,
    OutboxEntry,
    Repo,
    Run,
    ScheduleState,
    ScheduleTick,
    StatusChange,
    Subscription,
    WebhookDelivery,
)

# Fixed namespace so a run's uuid follows from its deterministic name on every machine.
RUN_UUID_NAMESPACE = uuidlib.UUID("5d0f3c62-52a4-4d0c-9b0e-1f3f6f1d2a77")


class CreatedRun(NamedTuple):
    run: Run
    created: bool  # False: the run already existed for this (operation, cause)


class LatestStatus(NamedTuple):
    op_key: str
    run_name: str
    status: Status
    updated_at: dt.datetime


class DueTick(NamedTuple):
    op_key: str
    tick_at: dt.datetime
    last_tick_at: dt.datetime | None
    run_count: int


class PendingEvent(NamedTuple):
    change: StatusChange
    run: Run


def _t(model: type[SQLModel]) -> Any:
    """The Core table of a model (sqlmodel types `__table__` loosely)."""
    return model.__table__  # type: ignore[attr-defined]


def run_uuid(name: str) -> str:
    return str(uuidlib.uuid5(RUN_UUID_NAMESPACE, name))


def _transition_statements() -> tuple[Any, Any, Any]:
    """`transition` is the hottest write path (see bench/): its statements are built once, with
    bind parameters, so SQLAlchemy compiles them once instead of on every call."""
    r, sc = _t(Run), _t(StatusChange)
    status_type, time_type = EnumText(Status), UTCDateTime()
    lock = select(r.c.id, r.c.status, r.c.started_at).where(r.c.name == bindparam("b_name")).with_for_update()
    update_run = (
        update(r)
        .where(r.c.id == bindparam("b_id"))
        .values(
            status=bindparam("b_status", type_=status_type),
            updated_at=bindparam("b_at", type_=time_type),
            # NULL parameters leave the column as it is.
            started_at=func.coalesce(r.c.started_at, bindparam("b_started", type_=time_type)),
            finished_at=func.coalesce(bindparam("b_finished", type_=time_type), r.c.finished_at),
        )
    )
    # The run row is locked, so max(seq) + 1 cannot race another writer.
    next_seq = (
        select(func.coalesce(func.max(sc.c.seq), -1) + 1).where(sc.c.run_id == bindparam("b_run")).scalar_subquery()
    )
    insert_change = (
        insert(sc)
        .values(
            run_id=bindparam("b_run"),
            seq=next_seq,
            status=bindparam("b_status", type_=status_type),
            previous=bindparam("b_previous", type_=status_type),
            reason=bindparam("b_reason"),
            message=bindparam("b_message"),
            at=bindparam("b_at", type_=time_type),
        )
        .returning(sc.c.id, sc.c.seq)
    )
    return lock, update_run, insert_change


_LOCK_RUN, _UPDATE_RUN_STATUS, _INSERT_STATUS_CHANGE = _transition_statements()


def _file_identity(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class Store:
    """Tracking database access; one per process, safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read_engine = engine.execution_options(**{READ_ONLY: True})
        # The SQLite file as opened: deleted or replaced under us, open connections would go on
        # writing to a file nobody will ever read again (see `write_problem`).
        self._sqlite_file = sqlite_path(engine.url)
        self._sqlite_identity = _file_identity(self._sqlite_file)

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(create_engine_for(url))

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- transactions ---------------------------------------------------------------------

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

    def _insert_ignore(
        self, session: Session, model: type[SQLModel], values: Mapping[str, Any], conflict: Sequence[str] = ()
    ) -> bool:
        """Insert a row unless it collides with a unique constraint; True when inserted.

        `conflict` names the columns of the constraint that makes the insert a no-op; left empty,
        any unique constraint does (callers then tell which one by reading back).
        """
        table = _t(model)
        if self.dialect == "postgresql":
            pg = pg_insert(table).values(**values)
            stmt: Any = pg.on_conflict_do_nothing(index_elements=list(conflict) or None)
        else:
            lite = sqlite_insert(table).values(**values)
            stmt = lite.on_conflict_do_nothing(index_elements=list(conflict) or None)
        # RETURNING says whether a row went in; rowcount is not reliable across drivers here.
        result = session.connection().execute(stmt.returning(*table.primary_key.columns))
        return result.first() is not None

    # -- repos, commits, operations --------------------------------------------------------

    def ensure_repo(self, name: str, url: str, branch: str, now: dt.datetime, session: Session | None = None) -> Repo:
        with self._tx(session) as s:
            self._insert_ignore(s, Repo, {"name": name, "url": url, "branch": branch, "created_at": now}, ["name"])
            repo = s.execute(select(Repo).where(_t(Repo).c.name == name).with_for_update()).scalar_one()
            repo.url, repo.branch = url, branch
            s.add(repo)
            s.flush()
            return repo

    def _repo_id(self, s: Session, name: str) -> int:
        repo_id = s.execute(select(_t(Repo).c.id).where(_t(Repo).c.name == name)).scalar_one_or_none()
        if repo_id is None:
            raise NotFound(f"repo {name!r} is not tracked")
        return int(repo_id)

    def record_commit(
        self,
        repo: str,
        sha: str,
        branch: str,
        committed_at: dt.datetime,
        now: dt.datetime,
        *,
        valid: bool | None = None,
        errors: Iterable[Mapping[str, Any]] = (),
        session: Session | None = None,
    ) -> GitCommit:
        """Record a commit seen on `branch`; a later call with a validation result updates it.

        `errors` are located errors, `{"file": ..., "line": ..., "message": ...}` each.
        """
        error_list = [dict(e) for e in errors]
        with self._tx(session) as s:
            repo_id = self._repo_id(s, repo)
            self._insert_ignore(
                s,
                GitCommit,
                {
                    "repo_id": repo_id,
                    "sha": sha,
                    "branch": branch,
                    "committed_at": committed_at,
                    "recorded_at": now,
                    "valid": valid,
                    "errors": error_list,
                },
                ["repo_id", "sha"],
            )
            commit = s.execute(
                select(GitCommit)
                .where(_t(GitCommit).c.repo_id == repo_id, _t(GitCommit).c.sha == sha)
                .with_for_update()
            ).scalar_one()
            if valid is not None:
                # Applying a commit again (a force-push back to it) makes it the last applied.
                commit.valid, commit.errors, commit.recorded_at = valid, error_list, now
                s.add(commit)
                s.flush()
            return commit

    def commit(self, repo: str, sha: str, session: Session | None = None) -> GitCommit | None:
        with self._read(session) as s:
            c = _t(GitCommit).c
            return s.execute(
                select(GitCommit).join(Repo).where(_t(Repo).c.name == repo, c.sha == sha)
            ).scalar_one_or_none()

    def upsert_operation(
        self,
        op_key: str,
        repo: str,
        mode: str,
        now: dt.datetime,
        *,
        spec_hash: str | None = None,
        commit_sha: str | None = None,
        valid: bool = True,
        session: Session | None = None,
    ) -> Operation:
        """Record an operation as compiled at `commit_sha`.

        Valid: `spec_hash` becomes the last good hash and the invalid mark is cleared. Invalid:
        the last good hash is kept (safety rule 1) and `invalid_since` is set, once, to `now`.
        """
        with self._tx(session) as s:
            repo_id = self._repo_id(s, repo)
            self._insert_ignore(
                s,
                Operation,
                {"op_key": op_key, "repo_id": repo_id, "mode": mode, "updated_at": now},
                ["op_key"],
            )
            op = s.execute(select(Operation).where(_t(Operation).c.op_key == op_key).with_for_update()).scalar_one()
            op.mode, op.updated_at = mode, now
            if valid:
                if spec_hash is not None:
                    op.last_good_spec_hash = spec_hash
                    op.last_good_commit_sha = commit_sha
                op.invalid_since, op.invalid_commit_sha = None, None
            else:
                if op.invalid_since is None:
                    op.invalid_since = now
                op.invalid_commit_sha = commit_sha
            s.add(op)
            s.flush()
            return op

    def operation(self, op_key: str, session: Session | None = None) -> Operation | None:
        with self._read(session) as s:
            return s.execute(select(Operation).where(_t(Operation).c.op_key == op_key)).scalar_one_or_none()

    def operations(self, repo: str | None = None, session: Session | None = None) -> list[Operation]:
        with self._read(session) as s:
            stmt = select(Operation).order_by(_t(Operation).c.op_key)
            if repo is not None:
                stmt = stmt.join(Repo).where(_t(Repo).c.name == repo)
            return list(s.execute(stmt).scalars())

    def _op_id(self, s: Session, op_key: str) -> int:
        op_id = s.execute(select(_t(Operation).c.id).where(_t(Operation).c.op_key == op_key)).scalar_one_or_none()
        if op_id is None:
            raise NotFound(f"operation {op_key!r} is not tracked")
        return int(op_id)

    # -- runs and their status ---------------------------------------------------------------

    def create_run(
        self,
        *,
        op_key: str,
        cause_kind: CauseKind,
        cause_id: str,
        name: str,
        spec_hash: str,
        backend: str,
        now: dt.datetime,
        commit_sha: str | None = None,
        run_uuid_: str | None = None,
        status: Status = Status.CREATED,
        reason: str | None = None,
        message: str | None = None,
        kind: str | None = None,
        spec: Mapping[str, Any] | None = None,
        parent: str | None = None,
        session: Session | None = None,
    ) -> CreatedRun:
        """The run of `op_key` for this cause, created (with its first history row) if new.

        Calling it again for the same (operation, cause) returns the existing run untouched, so
        a retry after a crash never makes a second run.
        """
        if status not in (Status.CREATED, Status.RESUMING, Status.ON_SCHEDULE):
            raise ValueError(f"a run starts as created, resuming or on_schedule, not {status}")
        with self._tx(session) as s:
            op_id = self._op_id(s, op_key)
            inserted = self._insert_ignore(
                s,
                Run,
                {
                    "name": name,
                    "uuid": run_uuid_ or run_uuid(name),
                    "operation_id": op_id,
                    "cause_kind": cause_kind,
                    "cause_id": cause_id,
                    "commit_sha": commit_sha,
                    "spec_hash": spec_hash,
                    "backend": backend,
                    "status": status,
                    "created_at": now,
                    "updated_at": now,
                    "kind": kind,
                    "spec": dict(spec) if spec is not None else None,
                    "parent": parent,
                },
            )
            c = _t(Run).c
            run = s.execute(
                select(Run).where(c.operation_id == op_id, c.cause_kind == cause_kind, c.cause_id == cause_id)
            ).scalar_one_or_none()
            if run is None:
                raise RunNameConflict(
                    f"run name {name!r} (or its uuid) already belongs to another operation or cause; "
                    f"cannot create it for {op_key} {cause_kind}:{cause_id}"
                )
            if inserted:
                assert run.id is not None
                s.add(StatusChange(run_id=run.id, seq=0, status=status, reason=reason, message=message, at=now))
                s.flush()
            return CreatedRun(run, inserted)

    def _lock_run(self, s: Session, run: Run | str) -> Run:
        name = run if isinstance(run, str) else run.name
        found = s.execute(select(Run).where(_t(Run).c.name == name).with_for_update()).scalar_one_or_none()
        if found is None:
            raise NotFound(f"run {name!r} is not tracked")
        return found

    def run(self, name: str, session: Session | None = None) -> Run | None:
        with self._read(session) as s:
            return s.execute(select(Run).where(_t(Run).c.name == name)).scalar_one_or_none()

    def set_backend_ref(
        self, run: Run | str, backend_ref: str, now: dt.datetime, session: Session | None = None
    ) -> Run:
        with self._tx(session) as s:
            found = self._lock_run(s, run)
            found.backend_ref, found.updated_at = backend_ref, now
            s.add(found)
            s.flush()
            return found

    def transition(
        self,
        run: Run | str,
        status: Status,
        *,
        at: dt.datetime,
        reason: str | None = None,
        message: str | None = None,
        session: Session | None = None,
    ) -> StatusChange | None:
        """Move a run to `status`, recording the change; None when it already is in `status`.

        Raises `IllegalTransition` for a change the lifecycle forbids (a done run never changes).
        """
        name = run if isinstance(run, str) else run.name
        with self._tx(session) as s:
            conn = s.connection()
            row = conn.execute(_LOCK_RUN, {"b_name": name}).one_or_none()
            if row is None:
                raise NotFound(f"run {name!r} is not tracked")
            run_id, current, started_at = int(row.id), Status(row.status), row.started_at
            if current == status:
                return None
            why = transition_error(current, status)
            if why is not None:
                raise IllegalTransition(name, current, status, why)
            started = at if status in RUNNING and started_at is None else None
            finished = at if is_done(status) else None
            conn.execute(
                _UPDATE_RUN_STATUS,
                {
                    "b_id": run_id,
                    "b_status": status,
                    "b_at": at,
                    "b_started": started,
                    "b_finished": finished,
                },
            )
            inserted = conn.execute(
                _INSERT_STATUS_CHANGE,
                {
                    "b_run": run_id,
                    "b_status": status,
                    "b_previous": current,
                    "b_reason": reason,
                    "b_message": message,
                    "b_at": at,
                },
            ).one()
            values: dict[str, Any] = {"status": status, "updated_at": at}
            if started is not None:
                values["started_at"] = started
            if finished is not None:
                values["finished_at"] = finished
            self._sync_loaded_run(s, run if isinstance(run, Run) else None, run_id, values)
            return StatusChange(
                id=inserted.id,
                run_id=run_id,
                seq=inserted.seq,
                status=status,
                previous=current,
                reason=reason,
                message=message,
                at=at,
            )

    @staticmethod
    def _sync_loaded_run(s: Session, given: Run | None, run_id: int, values: Mapping[str, Any]) -> None:
        """Bring ORM copies of the run (the caller's, the session's) in line with a Core update."""
        loaded = s.identity_map.get(identity_key(Run, run_id))
        for obj in {id(o): o for o in (given, loaded) if o is not None}.values():
            for key, value in values.items():
                set_committed_value(obj, key, value)

    def runs_by_op(self, op_key: str, limit: int | None = None, session: Session | None = None) -> list[Run]:
        """Runs of an operation, newest first."""
        c = _t(Run).c
        stmt = (
            select(Run)
            .join(Operation)
            .where(_t(Operation).c.op_key == op_key)
            .order_by(c.created_at.desc(), c.id.desc())
            .limit(limit)
        )
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())

    def runs_by_commit(self, sha: str, session: Session | None = None) -> list[Run]:
        c = _t(Run).c
        with self._read(session) as s:
            return list(s.execute(select(Run).where(c.commit_sha == sha).order_by(c.id)).scalars())

    def runs_by_status(
        self, statuses: Status | Iterable[Status], limit: int | None = None, session: Session | None = None
    ) -> list[Run]:
        wanted = [statuses] if isinstance(statuses, Status) else list(statuses)
        c = _t(Run).c
        stmt = select(Run).where(c.status.in_([str(w) for w in wanted])).order_by(c.id).limit(limit)
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())

    def latest_status_per_op(self, repo: str | None = None, session: Session | None = None) -> dict[str, LatestStatus]:
        """For each operation with runs: its newest run and that run's current status.

        One index probe per operation, served by the (operation_id, created_at, id) index.
        """
        o = _t(Operation).c
        newest_first = (_t(Run).c.created_at.desc(), _t(Run).c.id.desc())
        if self.dialect == "postgresql":
            # LATERAL: one index probe per operation, returning the whole newest row.
            newest = (
                select(_t(Run).c.name, _t(Run).c.status, _t(Run).c.updated_at)
                .where(_t(Run).c.operation_id == o.id)
                .order_by(*newest_first)
                .limit(1)
                .lateral("newest")
            )
            stmt: Select[Any] = (
                select(o.op_key, newest.c.name, newest.c.status, newest.c.updated_at)
                .select_from(_t(Operation).join(newest, true()))
                .order_by(o.op_key)
            )
        else:
            # SQLite has no LATERAL: find the newest run's id per operation, then fetch it by key.
            r = _t(Run).c
            inner = _t(Run).alias("newer_run").c
            newest_id = (
                select(inner.id)
                .where(inner.operation_id == o.id)
                .order_by(inner.created_at.desc(), inner.id.desc())
                .limit(1)
                .correlate(_t(Operation))
                .scalar_subquery()
            )
            stmt = (
                select(o.op_key, r.name, r.status, r.updated_at)
                .select_from(_t(Operation).join(_t(Run), r.id == newest_id))
                .order_by(o.op_key)
            )
        if repo is not None:
            stmt = stmt.where(o.repo_id == select(_t(Repo).c.id).where(_t(Repo).c.name == repo).scalar_subquery())
        with self._read(session) as s:
            return {row[0]: LatestStatus(*row) for row in s.execute(stmt).all()}

    def history(self, run: Run | str, session: Session | None = None) -> list[StatusChange]:
        """Every status the run entered, first to last."""
        name = run if isinstance(run, str) else run.name
        c = _t(StatusChange).c
        with self._read(session) as s:
            stmt = select(StatusChange).join(Run).where(_t(Run).c.name == name).order_by(c.seq)
            return list(s.execute(stmt).scalars())

    # -- commit-status outbox ------------------------------------------------------------------

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
        """Queue a commit status; False when this (sha, context, state) was already queued.

        Pass the session of the state change that caused it, so both commit or neither does.
        """
        with self._tx(session) as s:
            return self._insert_ignore(
                s,
                OutboxEntry,
                {
                    "repo": repo,
                    "sha": sha,
                    "context": context,
                    "state": state,
                    "description": description,
                    "target_url": target_url,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                },
                ["sha", "context", "state"],
            )

    def _postable(self, now: dt.datetime) -> ColumnElement[bool]:
        """Rows worth posting at `now`: due, unclaimed, newest of their (sha, context), none in flight."""
        o = _t(OutboxEntry)
        n = o.alias("newer")
        f = o.alias("in_flight")
        newer = exists().where(
            n.c.sha == o.c.sha, n.c.context == o.c.context, n.c.id > o.c.id, n.c.superseded_at.is_(None)
        )
        in_flight = exists().where(
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
    ) -> list[OutboxEntry]:
        """Claim up to `limit` postable rows for `lease`; each claim counts as an attempt.

        Two daemons never get the same row: PostgreSQL skips rows another transaction holds,
        and a committed claim is excluded by `claimed_until` until the lease runs out (so rows
        of a poster that died come back). The lease must outlast the forge call's timeout.
        """
        o = _t(OutboxEntry)
        ids_stmt = (
            select(o.c.id)
            .where(self._postable(now))
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
        """The forge accepted the row: done, and older unposted states of its (sha, context) retire."""
        o = _t(OutboxEntry)
        with self._tx(session) as s:
            row = s.execute(select(o.c.sha, o.c.context).where(o.c.id == entry_id)).one_or_none()
            if row is None:
                raise NotFound(f"outbox row {entry_id} does not exist")
            conn = s.connection()
            conn.execute(update(o).where(o.c.id == entry_id).values(posted_at=at, claimed_until=None, last_error=None))
            conn.execute(
                update(o)
                .where(
                    o.c.sha == row.sha,
                    o.c.context == row.context,
                    o.c.id < entry_id,
                    o.c.posted_at.is_(None),
                    o.c.superseded_at.is_(None),
                )
                .values(superseded_at=at, claimed_until=None)
            )

    def mark_failed(self, entry_id: int, next_attempt: dt.datetime, error: str, session: Session | None = None) -> None:
        """Posting failed: release the claim and try again at `next_attempt`."""
        o = _t(OutboxEntry)
        with self._tx(session) as s:
            result: CursorResult[Any] = s.connection().execute(
                update(o)
                .where(o.c.id == entry_id, o.c.posted_at.is_(None))
                .values(next_attempt_at=next_attempt, claimed_until=None, last_error=error)
            )
            if result.rowcount != 1:
                raise NotFound(f"outbox row {entry_id} does not exist or was already posted")

    def coalesce_outbox(self, now: dt.datetime, session: Session | None = None) -> int:
        """Retire unposted states that a newer state of the same (sha, context) replaced.

        Rows still in flight are left alone. Returns how many rows were retired.
        """
        o = _t(OutboxEntry)
        n = o.alias("newer")
        newer = exists().where(
            n.c.sha == o.c.sha, n.c.context == o.c.context, n.c.id > o.c.id, n.c.superseded_at.is_(None)
        )
        stmt = (
            update(o)
            .where(
                o.c.posted_at.is_(None),
                o.c.superseded_at.is_(None),
                or_(o.c.claimed_until.is_(None), o.c.claimed_until <= now),
                newer,
            )
            .values(superseded_at=now)
        )
        with self._tx(session) as s:
            result: CursorResult[Any] = s.connection().execute(stmt)
            return int(result.rowcount)

    def outbox(self, sha: str | None = None, session: Session | None = None) -> list[OutboxEntry]:
        """All outbox rows (of one sha), in insertion order: for the read API and tests."""
        c = _t(OutboxEntry).c
        stmt = select(OutboxEntry).order_by(c.id)
        if sha is not None:
            stmt = stmt.where(c.sha == sha)
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())

    # -- schedules -----------------------------------------------------------------------------

    def set_schedule(
        self, op_key: str, next_tick_at: dt.datetime | None, now: dt.datetime, session: Session | None = None
    ) -> ScheduleState:
        """Register (or re-register) an operation's schedule; its tick history is kept."""
        with self._tx(session) as s:
            op_id = self._op_id(s, op_key)
            self._insert_ignore(
                s,
                ScheduleState,
                {"operation_id": op_id, "next_tick_at": next_tick_at, "run_count": 0, "updated_at": now},
                ["operation_id"],
            )
            state = s.execute(
                select(ScheduleState).where(_t(ScheduleState).c.operation_id == op_id).with_for_update()
            ).scalar_one()
            state.next_tick_at, state.updated_at = next_tick_at, now
            s.add(state)
            s.flush()
            return state

    def schedule_state(self, op_key: str, session: Session | None = None) -> ScheduleState | None:
        with self._read(session) as s:
            return s.execute(
                select(ScheduleState).join(Operation).where(_t(Operation).c.op_key == op_key)
            ).scalar_one_or_none()

    def remove_schedule(self, op_key: str, session: Session | None = None) -> None:
        """Stop ticking; fired ticks stay recorded so a re-added schedule cannot fire them again."""
        with self._tx(session) as s:
            op_id = self._op_id(s, op_key)
            state = s.get(ScheduleState, op_id)
            if state is not None:
                s.delete(state)
                s.flush()

    def due_ticks(self, now: dt.datetime, limit: int | None = None, session: Session | None = None) -> list[DueTick]:
        """Schedules whose next tick is at or before `now`, most overdue first."""
        st, o = _t(ScheduleState).c, _t(Operation).c
        stmt = (
            select(o.op_key, st.next_tick_at, st.last_tick_at, st.run_count)
            .join_from(_t(ScheduleState), _t(Operation), st.operation_id == o.id)
            .where(st.next_tick_at.is_not(None), st.next_tick_at <= now)
            .order_by(st.next_tick_at, o.op_key)
            .limit(limit)
        )
        with self._read(session) as s:
            return [DueTick(*row) for row in s.execute(stmt).all()]

    def claim_tick(
        self,
        op_key: str,
        tick_at: dt.datetime,
        next_tick_at: dt.datetime | None,
        now: dt.datetime,
        session: Session | None = None,
    ) -> bool:
        """Fire the tick at `tick_at` once: True for the caller that fired it, False for any repeat.

        The schedule advances to `next_tick_at` and counts the run in the same transaction.
        """
        with self._tx(session) as s:
            op_id = self._op_id(s, op_key)
            fired = self._insert_ignore(
                s,
                ScheduleTick,
                {"operation_id": op_id, "tick_at": tick_at, "claimed_at": now},
                ["operation_id", "tick_at"],
            )
            if not fired:
                return False
            self._insert_ignore(
                s,
                ScheduleState,
                {"operation_id": op_id, "next_tick_at": None, "run_count": 0, "updated_at": now},
                ["operation_id"],
            )
            st = _t(ScheduleState)
            s.connection().execute(
                update(st)
                .where(st.c.operation_id == op_id)
                .values(
                    last_tick_at=tick_at,
                    next_tick_at=next_tick_at,
                    run_count=st.c.run_count + 1,
                    updated_at=now,
                )
            )
            return True

    def attach_tick_run(
        self, op_key: str, tick_at: dt.datetime, run: Run | str, session: Session | None = None
    ) -> None:
        """Remember which run a fired tick created."""
        with self._tx(session) as s:
            op_id = self._op_id(s, op_key)
            found = self._lock_run(s, run)
            t = _t(ScheduleTick)
            result: CursorResult[Any] = s.connection().execute(
                update(t).where(t.c.operation_id == op_id, t.c.tick_at == tick_at).values(run_id=found.id)
            )
            if result.rowcount != 1:
                raise NotFound(f"no fired tick of {op_key} at {tick_at.isoformat()}")

    def ticks(self, op_key: str, session: Session | None = None) -> list[ScheduleTick]:
        with self._read(session) as s:
            stmt = (
                select(ScheduleTick)
                .join(Operation)
                .where(_t(Operation).c.op_key == op_key)
                .order_by(_t(ScheduleTick).c.tick_at)
            )
            return list(s.execute(stmt).scalars())

    # -- event subscriptions -------------------------------------------------------------------

    def upsert_subscription(
        self,
        op_key: str,
        source_op_key: str,
        kinds: Iterable[Status],
        now: dt.datetime,
        session: Session | None = None,
    ) -> Subscription:
        """`op_key` starts a run when a run of `source_op_key` enters one of `kinds` after `now`."""
        kind_values = sorted({str(Status(k)) for k in kinds})
        with self._tx(session) as s:
            op_id, source_id = self._op_id(s, op_key), self._op_id(s, source_op_key)
            self._insert_ignore(
                s,
                Subscription,
                {
                    "operation_id": op_id,
                    "source_operation_id": source_id,
                    "kinds": kind_values,
                    "created_at": now,
                    "updated_at": now,
                },
                ["operation_id", "source_operation_id"],
            )
            c = _t(Subscription).c
            sub = s.execute(
                select(Subscription)
                .where(c.operation_id == op_id, c.source_operation_id == source_id)
                .with_for_update()
            ).scalar_one()
            if sub.kinds != kind_values:
                sub.kinds, sub.updated_at = kind_values, now
                s.add(sub)
                s.flush()
            return sub

    def remove_subscription(self, op_key: str, source_op_key: str, session: Session | None = None) -> None:
        with self._tx(session) as s:
            op_id, source_id = self._op_id(s, op_key), self._op_id(s, source_op_key)
            c = _t(Subscription).c
            sub = s.execute(
                select(Subscription).where(c.operation_id == op_id, c.source_operation_id == source_id)
            ).scalar_one_or_none()
            if sub is not None:
                s.delete(sub)
                s.flush()

    def subscriptions(self, source_op_key: str | None = None, session: Session | None = None) -> list[Subscription]:
        c = _t(Subscription).c
        stmt = select(Subscription).order_by(c.id)
        if source_op_key is not None:
            stmt = stmt.join(Operation, _t(Operation).c.id == c.source_operation_id).where(
                _t(Operation).c.op_key == source_op_key
            )
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())

    def pending_events(
        self, subscription_id: int, limit: int | None = None, session: Session | None = None
    ) -> list[PendingEvent]:
        """Transitions that should fire the subscription and were not consumed yet, oldest first."""
        with self._read(session) as s:
            sub = s.get(Subscription, subscription_id)
            if sub is None:
                raise NotFound(f"subscription {subscription_id} does not exist")
            wanted: set[str] = set()
            for kind in sub.kinds:
                wanted |= {str(x) for x in statuses_for_trigger(Status(kind))}
            sc, r, ct = _t(StatusChange).c, _t(Run).c, _t(ConsumedTransition).c
            consumed = exists().where(ct.subscription_id == subscription_id, ct.status_change_id == sc.id)
            stmt = (
                select(StatusChange, Run)
                .join(Run, r.id == sc.run_id)
                .where(
                    r.operation_id == sub.source_operation_id,
                    sc.status.in_(sorted(wanted)),
                    sc.at >= sub.created_at,
                    ~consumed,
                )
                .order_by(sc.at, sc.id)
                .limit(limit)
            )
            return [PendingEvent(change, run) for change, run in s.execute(stmt).all()]

    def consume_transition(
        self,
        subscription_id: int,
        status_change_id: int,
        now: dt.datetime,
        run: Run | str | None = None,
        session: Session | None = None,
    ) -> bool:
        """Mark a transition as handled for a subscription; False when it already was.

        Do it in the same unit of work as creating the downstream run.
        """
        with self._tx(session) as s:
            run_id = self._lock_run(s, run).id if run is not None else None
            return self._insert_ignore(
                s,
                ConsumedTransition,
                {
                    "subscription_id": subscription_id,
                    "status_change_id": status_change_id,
                    "consumed_at": now,
                    "run_id": run_id,
                },
                ["subscription_id", "status_change_id"],
            )

    # -- webhooks ------------------------------------------------------------------------------

    def record_delivery(
        self, provider: str, delivery_id: str, now: dt.datetime, session: Session | None = None
    ) -> bool:
        """True the first time a webhook delivery id is seen, False for a redelivery."""
        with self._tx(session) as s:
            return self._insert_ignore(
                s,
                WebhookDelivery,
                {"provider": provider, "delivery_id": delivery_id, "received_at": now},
                ["provider", "delivery_id"],
            )

    def prune_deliveries(self, before: dt.datetime, session: Session | None = None) -> int:
        """Forget delivery ids received before `before` (forges redeliver within hours, not weeks)."""
        d = _t(WebhookDelivery).c
        with self._tx(session) as s:
            result = s.execute(_t(WebhookDelivery).delete().where(d.received_at < before))
            return int(getattr(result, "rowcount", 0) or 0)

    # -- health ------------------------------------------------------------------------------

    def write_problem(self, now: dt.datetime) -> str | None:
        """Why the database does not take writes now (None: it does). For `/readyz`.

        A row is written and removed in one committed transaction, so a full disk, a read-only
        file or a lost server shows. For SQLite, the file must also still be the one opened.
        """
        if self._sqlite_file is not None:
            current = _file_identity(self._sqlite_file)
            if current is None:
                return f"the database file {self._sqlite_file} is gone"
            if self._sqlite_identity is None:
                self._sqlite_identity = current
            elif current != self._sqlite_identity:
                return f"the database file {self._sqlite_file} was replaced since it was opened"
        d = _t(WebhookDelivery).c
        probe = f"probe-{uuidlib.uuid4().hex}"  # several daemons may probe one database at once
        try:
            with self.unit_of_work() as s:
                s.execute(insert(_t(WebhookDelivery)).values(provider="readyz", delivery_id=probe, received_at=now))
                s.execute(_t(WebhookDelivery).delete().where(d.provider == "readyz", d.delivery_id == probe))
        except Exception as e:
            return f"a write failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return None

    # -- what the daemon and the CLI read ------------------------------------------------------

    def update_run_spec(
        self, run: Run | str, spec_hash: str, spec: Mapping[str, Any], now: dt.datetime, session: Session | None = None
    ) -> Run:
        """A long-running run converged in place to a new spec (design.md §4: updated in place)."""
        with self._tx(session) as s:
            found = self._lock_run(s, run)
            found.spec_hash, found.spec, found.updated_at = spec_hash, dict(spec), now
            s.add(found)
            s.flush()
            return found

    def last_commit(self, repo: str, session: Session | None = None) -> GitCommit | None:
        """The commit most recently recorded for `repo`: the last one the daemon applied."""
        c = _t(GitCommit).c
        stmt = (
            select(GitCommit)
            .join(Repo)
            .where(_t(Repo).c.name == repo)
            .order_by(c.recorded_at.desc(), c.id.desc())
            .limit(1)
        )
        with self._read(session) as s:
            return s.execute(stmt).scalar_one_or_none()

    def list_runs(
        self,
        *,
        repo: str | None = None,
        op_key: str | None = None,
        status: str | None = None,
        name: str | None = None,
        top_level: bool = False,
        limit: int | None = None,
        session: Session | None = None,
    ) -> list[tuple[Run, str]]:
        """Runs with their operation key, newest first; `top_level` leaves out DAG ops and trials."""
        r, o = _t(Run).c, _t(Operation).c
        stmt = select(Run, o.op_key).join(Operation).order_by(r.created_at.desc(), r.id.desc()).limit(limit)
        if repo is not None:
            stmt = stmt.where(o.repo_id == select(_t(Repo).c.id).where(_t(Repo).c.name == repo).scalar_subquery())
        if op_key is not None:
            stmt = stmt.where(o.op_key == op_key)
        if status is not None:
            stmt = stmt.where(r.status == status)
        if name is not None:
            stmt = stmt.where(r.name == name)
        if top_level:
            stmt = stmt.where(r.parent.is_(None))
        with self._read(session) as s:
            return [(row[0], str(row[1])) for row in s.execute(stmt)]

    def count_runs(self, session: Session | None = None) -> dict[tuple[str, str], int]:
        """Runs by (kind, status): the `reconciler_runs` gauge."""
        r = _t(Run).c
        stmt = select(r.kind, r.status, func.count()).group_by(r.kind, r.status)
        with self._read(session) as s:
            return {(str(kind or "unknown"), str(status)): int(n) for kind, status, n in s.execute(stmt)}

    def schedules(self, repo: str | None = None, session: Session | None = None) -> list[tuple[str, ScheduleState]]:
        """Registered schedules with their operation key, for `reconciler schedules list`."""
        o = _t(Operation).c
        stmt = (
            select(o.op_key, ScheduleState)
            .join_from(_t(ScheduleState), _t(Operation), _t(ScheduleState).c.operation_id == o.id)
            .order_by(o.op_key)
        )
        if repo is not None:
            stmt = stmt.where(o.repo_id == select(_t(Repo).c.id).where(_t(Repo).c.name == repo).scalar_subquery())
        with self._read(session) as s:
            return [(str(key), state) for key, state in s.execute(stmt)]
