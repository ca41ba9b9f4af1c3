"""Runs and their status history: the one place a run is inserted or changes status."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, and_, bindparam, case, delete, func, insert, or_, select, true, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from reconciler.model import Cause, OpKey, RunRequest
from reconciler.statuses import (
    ACTIVE,
    DONE,
    RUNNING,
    Status,
    is_done,
    transition_error,
)
from reconciler.tracking.coltypes import EnumText, UTCDateTime
from reconciler.tracking.db import table
from reconciler.tracking.errors import IllegalTransition, NotFound, RunNameConflict, TrackingError
from reconciler.tracking.repos import ReposMixin
from reconciler.tracking.tables_runs import (
    Operation,
    OrchestratedRun,
    Repo,
    Run,
    ScheduleTick,
    StatusChange,
)

_t = table

# Fixed namespace so a run's uuid follows from its deterministic name on every machine.
RUN_UUID_NAMESPACE = uuidlib.UUID("5d0f3c62-52a4-4d0c-9b0e-1f3f6f1d2a77")


class PlannerRun(NamedTuple):
    """A run as the planner reads it (`planner_runs`): its row's columns and its operation's key."""

    id: int
    name: str
    kind: str | None
    spec_hash: str
    status: Status
    cause: Cause
    cause_id: str
    backend_ref: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    updated_at: dt.datetime
    spec: dict[str, Any] | None
    op_key: str


class CreatedRun(NamedTuple):
    run: Run
    created: bool  # False: the run already existed for this (operation, cause)


@dataclass(frozen=True)
class NewRunRow:
    """A run to create (`create_runs`): its identity, cause, first status and detail row."""

    op_key: str
    cause: Cause
    cause_id: str
    name: str
    spec_hash: str
    backend: str
    commit_sha: str | None = None
    run_uuid: str | None = None
    status: Status = Status.CREATED
    reason: str | None = None
    message: str | None = None
    kind: str | None = None
    spec: Mapping[str, Any] | None = None
    parent: str | None = None
    namespace: str = "default"
    params: Mapping[str, Any] | None = None
    node: str | None = None
    trial_index: int | None = None
    meta: Mapping[str, Any] | None = None


class LatestStatus(NamedTuple):
    op_key: str
    run_name: str
    status: Status
    updated_at: dt.datetime


# Rows per statement in batch writes: under SQLite's bound-parameter limit with every column bound.
BATCH = 500

_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = BATCH) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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


class RunsMixin(ReposMixin):
    def create_run(
        self,
        *,
        op_key: str,
        cause: Cause,
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
        namespace: str = "default",
        params: Mapping[str, Any] | None = None,
        node: str | None = None,
        trial_index: int | None = None,
        meta: Mapping[str, Any] | None = None,
        session: Session | None = None,
    ) -> CreatedRun:
        """The run of `op_key` for this cause, created (with its first history row) if new.

        One row of `create_runs`, which says what happens; this raises what it returns
        (`RunNameConflict`, `NotFound`)."""
        row = NewRunRow(
            op_key=op_key, cause=cause, cause_id=cause_id, name=name, spec_hash=spec_hash, backend=backend,
            commit_sha=commit_sha, run_uuid=run_uuid_, status=status, reason=reason, message=message, kind=kind,
            spec=spec, parent=parent, namespace=namespace, params=params, node=node, trial_index=trial_index,
            meta=meta,
        )  # fmt: skip
        [result] = self.create_runs([row], now, session=session)
        if isinstance(result, TrackingError):
            raise result
        return result

    def create_runs(
        self, rows: Sequence[NewRunRow], now: dt.datetime, session: Session | None = None
    ) -> list[CreatedRun | RunNameConflict | NotFound]:
        """Each row's run of its operation for its cause, created (with its first history row
        and its detail row) if new; in `rows`' order, a statement per kind of row for the batch.

        Asking again for the same (operation, cause) returns the existing run untouched, so a
        retry after a crash never makes a second run. What a backend needs beyond the row (the
        namespace, the params; a DAG op's node or a trial's index) goes into the detail row, so
        `request_of` rebuilds the request from the database alone. A row whose operation is not
        tracked gets `NotFound`, a row whose name (or uuid) belongs to another (operation, cause)
        `RunNameConflict`: values, not raised, so one bad row leaves the others recorded.
        """
        for row in rows:
            if row.status not in (Status.CREATED, Status.RESUMING, Status.ON_SCHEDULE):
                raise ValueError(f"a run starts as created, resuming or on_schedule, not {row.status}")
        if not rows:
            return []
        r = _t(Run)
        with self._tx(session) as s:
            conn = s.connection()
            op_ids = self._op_ids(s, {row.op_key for row in rows})
            values = [
                {
                    "name": row.name,
                    "uuid": row.run_uuid or run_uuid(row.name),
                    "operation_id": op_ids[row.op_key],
                    "cause": row.cause,
                    "cause_id": row.cause_id,
                    "commit_sha": row.commit_sha,
                    "spec_hash": row.spec_hash,
                    "backend": row.backend,
                    "status": row.status,
                    "created_at": now,
                    "updated_at": now,
                    "kind": row.kind,
                    "spec": dict(row.spec) if row.spec is not None else None,
                    "parent": row.parent,
                }
                for row in rows
                if row.op_key in op_ids
            ]
            # RETURNING names what went in: a conflicting row returns nothing.
            inserted = {str(row.name) for row in self.insert_ignore_rows(s, Run, values, returning=["name"])}
            # Read back by (operation, cause, cause id): the run a row asked for, whoever made it.
            found: dict[tuple[int, str, str], Run] = {}
            wanted = {(v["operation_id"], v["cause_id"]) for v in values}
            for pairs in _chunks(sorted(wanted)):
                stmt = select(Run).where(
                    r.c.operation_id.in_({op for op, _ in pairs}), r.c.cause_id.in_({cid for _, cid in pairs})
                )
                for run in s.execute(stmt).scalars():
                    found[(run.operation_id, str(run.cause), run.cause_id)] = run
            results: list[CreatedRun | RunNameConflict | NotFound] = []
            first_rows: list[NewRunRow] = []
            for row in rows:
                op_id = op_ids.get(row.op_key)
                if op_id is None:
                    results.append(NotFound(f"operation {row.op_key!r} is not tracked"))
                    continue
                run_ = found.get((op_id, str(row.cause), row.cause_id))
                if run_ is None:
                    results.append(
                        RunNameConflict(
                            f"run name {row.name!r} (or its uuid) already belongs to another operation or cause; "
                            f"cannot create it for {row.op_key} {row.cause}:{row.cause_id}"
                        )
                    )
                    continue
                created = run_.name == row.name and run_.name in inserted
                inserted.discard(run_.name)  # the same (operation, cause) twice in one batch: created once
                if created:
                    first_rows.append(row)
                results.append(CreatedRun(run_, created))
            self._first_rows(conn, [(found[(op_ids[w.op_key], str(w.cause), w.cause_id)], w) for w in first_rows], now)
            return results

    @staticmethod
    def _first_rows(conn: Any, created: Sequence[tuple[Run, NewRunRow]], now: dt.datetime) -> None:
        """A new run's first history row and its detail row, for a batch of new runs."""
        if not created:
            return
        history = [
            {"run_id": run.id, "seq": 0, "status": row.status, "previous": None, "reason": row.reason,
             "message": row.message, "at": now}
            for run, row in created
        ]  # fmt: skip
        details = [
            {"run_id": run.id, "container": None, "node": row.node, "trial_index": row.trial_index,
             "params": dict(row.params or {}), "meta": dict(row.meta or {}), "namespace": row.namespace,
             "created_at": now}
            for run, row in created
        ]  # fmt: skip
        for rows in (history, details):
            target = _t(StatusChange) if rows is history else _t(OrchestratedRun)
            for batch in _chunks(rows):
                conn.execute(insert(target), batch)

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
        name = run if isinstance(run, str) else run.name
        with self._tx(session) as s:
            if not self.set_backend_refs({name: backend_ref}, now, session=s):
                raise NotFound(f"run {name!r} is not tracked")
            found = self.run(name, session=s)
            assert found is not None
            return found

    def set_backend_refs(self, refs: Mapping[str, str], now: dt.datetime, session: Session | None = None) -> int:
        """Record where each run lives in its backend ({run name: reference}), one statement for
        the batch; returns how many runs were found. ORM copies in the session follow."""
        if not refs:
            return 0
        r = _t(Run)
        stmt = (
            update(r)
            .where(r.c.name == bindparam("b_name"))
            .values(backend_ref=bindparam("b_ref"), updated_at=bindparam("b_at", type_=UTCDateTime()))
        )
        with self._tx(session) as s:
            params = [{"b_name": name, "b_ref": ref, "b_at": now} for name, ref in refs.items()]
            changed = 0
            for chunk in _chunks(params):
                result: CursorResult[Any] = s.connection().execute(stmt, chunk)
                changed += max(0, int(result.rowcount))
            for obj in list(s.identity_map.values()):
                if isinstance(obj, Run) and obj.name in refs:
                    set_committed_value(obj, "backend_ref", refs[obj.name])
                    set_committed_value(obj, "updated_at", now)
            return changed

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

    def note(
        self,
        run: str,
        *,
        at: dt.datetime,
        reason: str,
        message: str | None = None,
        session: Session | None = None,
    ) -> StatusChange:
        """A history row that keeps the run in its status (`previous` == `status`): something
        happened to the run that users should see in its history (its drift was corrected)
        without moving it. Event subscriptions and `last_reasons` skip such rows."""
        with self._tx(session) as s:
            conn = s.connection()
            row = conn.execute(_LOCK_RUN, {"b_name": run}).one_or_none()
            if row is None:
                raise NotFound(f"run {run!r} is not tracked")
            run_id, current = int(row.id), Status(row.status)
            inserted = conn.execute(
                _INSERT_STATUS_CHANGE,
                {
                    "b_run": run_id,
                    "b_status": current,
                    "b_previous": current,
                    "b_reason": reason,
                    "b_message": message,
                    "b_at": at,
                },
            ).one()
            return StatusChange(
                id=inserted.id,
                run_id=run_id,
                seq=inserted.seq,
                status=current,
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

    def list_runs(
        self,
        *,
        repo: str | None = None,
        op_key: str | None = None,
        status: str | None = None,
        name: str | None = None,
        top_level: bool = False,
        limit: int | None = None,
        cause: str | None = None,
        since: dt.datetime | None = None,
        parent: str | None = None,
        commit: str | None = None,
        statuses: Iterable[str] | None = None,
        before: tuple[dt.datetime, int] | None = None,
        session: Session | None = None,
    ) -> list[tuple[Run, str]]:
        """Runs with their operation key, newest first; `top_level` leaves out DAG ops and trials.

        `since` keeps runs created at or after it; `before` (created_at, id) of the last run of a
        page gives the next page (keyset pagination, served by the creation-order index)."""
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
        if cause is not None:
            stmt = stmt.where(r.cause == cause)
        if since is not None:
            stmt = stmt.where(r.created_at >= since)
        if parent is not None:
            stmt = stmt.where(r.parent == parent)
        if commit is not None:
            stmt = stmt.where(r.commit_sha == commit)
        if statuses is not None:
            stmt = stmt.where(r.status.in_(sorted(str(s) for s in statuses)))
        if before is not None:
            at, run_id = before
            stmt = stmt.where(or_(r.created_at < at, and_(r.created_at == at, r.id < run_id)))
        with self._read(session) as s:
            return [(row[0], str(row[1])) for row in s.execute(stmt)]

    def count_runs(self, session: Session | None = None) -> dict[tuple[str, str], int]:
        """Runs by (kind, status): the `reconciler_runs` gauge."""
        r = _t(Run).c
        stmt = select(r.kind, r.status, func.count()).group_by(r.kind, r.status)
        with self._read(session) as s:
            return {(str(kind or "unknown"), str(status)): int(n) for kind, status, n in s.execute(stmt)}

    # -- what orchestration, previews and the planner read -----------------------------------

    def lock_run(self, name: str, session: Session) -> Run | None:
        """The run row, locked for the rest of `session` (a parent being advanced, say)."""
        stmt = select(Run).where(_t(Run).c.name == name).with_for_update()
        return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()

    def run_detail(self, run_id: int, session: Session | None = None) -> OrchestratedRun | None:
        """What the run was given beyond its row: namespace, params, node or trial, outputs."""
        with self._read(session) as s:
            return s.get(OrchestratedRun, run_id, populate_existing=True)

    def save(self, *rows: Any, session: Session) -> None:
        """Write changes made to rows loaded in `session` (a schedule's watermark, a parent's seed)."""
        for row in rows:
            session.add(row)
        session.flush()

    def children(self, parent: str, cause: Cause, session: Session | None = None) -> list[tuple[Run, OrchestratedRun]]:
        """The DAG ops (`Cause.DAG`) or matrix trials (`Cause.MATRIX`) of `parent`, in creation order."""
        r, o = _t(Run).c, _t(OrchestratedRun).c
        stmt = (
            select(Run, OrchestratedRun)
            .join(OrchestratedRun, o.run_id == r.id)
            .where(r.parent == parent, r.cause == cause)
            .order_by(o.trial_index, r.id)
            .execution_options(populate_existing=True)
        )
        with self._read(session) as s:
            return [(run, row) for run, row in s.execute(stmt).all()]

    def child_runs(self, parent: str, session: Session | None = None) -> list[tuple[Run, str, OrchestratedRun | None]]:
        """Every child of `parent` (DAG ops, trials, hooks, retries of them) with its operation key
        and detail row: trials by index, the rest in creation order."""
        r, o, op = _t(Run).c, _t(OrchestratedRun).c, _t(Operation).c
        stmt = (
            select(Run, op.op_key, OrchestratedRun)
            .join(Operation, op.id == r.operation_id)
            .outerjoin(OrchestratedRun, o.run_id == r.id)
            .where(r.parent == parent)
            .order_by(o.trial_index, r.id)
        )
        with self._read(session) as s:
            return [(run, str(key), detail) for run, key, detail in s.execute(stmt).all()]

    def request_of(self, run: Run, session: Session | None = None) -> RunRequest:
        """The request a recorded run was made from (to start it again after a crash)."""
        with self._read(session) as s:
            assert run.id is not None
            detail = s.get(OrchestratedRun, run.id)
            key = self.op_key_by_id(run.operation_id, session=s)
        return RunRequest(
            name=run.name,
            op=OpKey.parse(key),
            kind=run.kind or "",
            spec_hash=run.spec_hash,
            effective=dict(run.spec or {}),
            cause=Cause(run.cause),
            cause_id=run.cause_id,
            commit=run.commit_sha or "",
            namespace=detail.namespace if detail is not None else "default",
            params=dict(detail.params) if detail is not None else {},
        )

    def runs_named(self, names: Iterable[str], session: Session | None = None) -> list[Run]:
        """The tracked runs among `names` (what a backend reports), in chunks the database takes."""
        wanted = sorted(set(names))
        found: list[Run] = []
        with self._read(session) as s:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                found += s.execute(select(Run).where(_t(Run).c.name.in_(chunk))).scalars()
        return found

    def repos_of_runs(self, names: Iterable[str], session: Session | None = None) -> dict[str, str]:
        """The repo of each named run the database tracks (for replicas that act on their repos only)."""
        wanted = sorted(set(names))
        r, o, p = _t(Run).c, _t(Operation).c, _t(Repo).c
        found: dict[str, str] = {}
        with self._read(session) as s:
            for start in range(0, len(wanted), 500):
                stmt = (
                    select(r.name, p.name)
                    .join(Operation, o.id == r.operation_id)
                    .join(Repo, p.id == o.repo_id)
                    .where(r.name.in_(wanted[start : start + 500]))
                )
                found.update({str(run): str(repo) for run, repo in s.execute(stmt).all()})
        return found

    def last_reasons(self, run_ids: Iterable[int], session: Session | None = None) -> dict[int, str | None]:
        """Why each run entered its current status (the reason of its last history row)."""
        wanted = sorted(set(run_ids))
        sc = _t(StatusChange).c
        found: dict[int, str | None] = {}
        with self._read(session) as s:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                # Notes (rows that keep the status) do not say why the run entered it.
                entered = or_(sc.previous.is_(None), sc.previous != sc.status)
                last = (
                    select(sc.run_id, func.max(sc.seq).label("seq"))
                    .where(sc.run_id.in_(chunk), entered)
                    .group_by(sc.run_id)
                )
                latest = last.subquery()
                stmt = select(sc.run_id, sc.reason).join(
                    latest, and_(sc.run_id == latest.c.run_id, sc.seq == latest.c.seq)
                )
                found.update({int(run_id): reason for run_id, reason in s.execute(stmt)})
        return found

    def count_reasons(self, run_ids: Iterable[int], reason: str, session: Session | None = None) -> dict[int, int]:
        """How many history rows of each run have `reason` (e.g. how often it was retried)."""
        wanted = sorted(set(run_ids))
        sc = _t(StatusChange).c
        found: dict[int, int] = {}
        with self._read(session) as s:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                stmt = (
                    select(sc.run_id, func.count()).where(sc.run_id.in_(chunk), sc.reason == reason).group_by(sc.run_id)
                )
                found.update({int(run_id): int(n) for run_id, n in s.execute(stmt)})
        return found

    def retries_of(self, run: Run, session: Session | None = None) -> int:
        """How many retries (`retry:<run>:<n>`) of `run` were made: the largest n, 0 for none."""
        r = _t(Run).c
        prefix = f"retry:{run.name}:"
        stmt = select(r.cause_id).where(
            r.operation_id == run.operation_id,
            r.cause == str(Cause.RETRY),
            r.cause_id.startswith(prefix, autoescape=True),
        )
        with self._read(session) as s:
            numbers = [c.removeprefix(prefix) for c in s.execute(stmt).scalars()]
        return max((int(n) for n in numbers if n.isdigit()), default=0)

    def unsubmitted_tick_runs(self, operation_ids: Iterable[int], session: Session | None = None) -> list[Run]:
        """The runs of these operations' ticks recorded and not handed to a backend yet (a tick
        decided ahead of its time, waiting for it), read through the (operation, cause) index."""
        ids = sorted(set(operation_ids))
        r = _t(Run).c
        found: list[Run] = []
        with self._read(session) as s:
            for start in range(0, len(ids), 500):
                stmt = select(Run).where(
                    r.operation_id.in_(ids[start : start + 500]),
                    r.cause == str(Cause.SCHEDULE),
                    r.backend_ref.is_(None),
                    r.status.in_([str(Status.CREATED), str(Status.ON_SCHEDULE)]),
                )
                found += s.execute(stmt).scalars()
        return found

    def unsubmitted_runs(self, session: Session | None = None) -> list[Run]:
        """Runs recorded but never handed to a backend or expanded (a crash between the two steps)."""
        r = _t(Run).c
        stmt = (
            select(Run)
            .where(r.backend_ref.is_(None), r.status.in_([str(Status.CREATED), str(Status.ON_SCHEDULE)]))
            .order_by(r.id)
        )
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())

    def unsettled_containers(self, session: Session | None = None) -> list[str]:
        """DAG and matrix runs not done yet: each may have missed a step while no daemon ran."""
        r, o = _t(Run).c, _t(OrchestratedRun).c
        stmt = (
            select(r.name)
            .join(OrchestratedRun, o.run_id == r.id)
            .where(o.container.is_not(None), r.status.not_in(sorted(str(s) for s in DONE)))
            .order_by(r.id)
        )
        with self._read(session) as s:
            return [str(n) for n in s.execute(stmt).scalars()]

    def previewed_pull_requests(self, repo: str, session: Session | None = None) -> set[int]:
        """The pull requests of `repo` with a preview run not done yet."""
        r, o, p = _t(Run).c, _t(Operation).c, _t(Repo).c
        stmt = (
            select(r.cause_id)
            .join(Operation, o.id == r.operation_id)
            .join(Repo, p.id == o.repo_id)
            .where(p.name == repo, r.cause == str(Cause.PREVIEW), r.status.not_in(sorted(str(s) for s in DONE)))
        )
        with self._read(session) as s:
            causes = list(s.execute(stmt).scalars())
        return {n for n in map(preview_number, causes) if n is not None}

    def preview_runs(self, repo: str, number: int, session: Session | None = None) -> list[Run]:
        """Every preview run of pull request `number` of `repo`, oldest first."""
        r, o, p = _t(Run).c, _t(Operation).c, _t(Repo).c
        stmt = (
            select(Run)
            .join(Operation, o.id == r.operation_id)
            .join(Repo, p.id == o.repo_id)
            .where(
                p.name == repo,
                r.cause == str(Cause.PREVIEW),
                r.cause_id.startswith(preview_cause_prefix(number), autoescape=True),
            )
            .order_by(r.id)
        )
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())

    def planner_runs(
        self, repo: str, *, spec_kinds: Iterable[str] | None = None, session: Session | None = None
    ) -> list[PlannerRun]:
        """What the planner reads of a repo's top-level runs: each op's newest run plus every active
        one, oldest first; never the whole history (a reconcile costs what the repo has now).

        One index probe per operation finds its newest run (`ix_run_op_created`), and the active
        runs come from the status index, so the cost does not grow with finished runs. With
        `spec_kinds`, only runs of those kinds carry their spec (the planner diffs long-running
        ones only); the others' `spec` is None, which keeps 10,000 specs out of memory. Plain rows,
        not ORM objects: 10,000 of those cost the daemon about 25 MB a reconcile."""
        r, o = _t(Run).c, _t(Operation).c
        repo_id = select(_t(Repo).c.id).where(_t(Repo).c.name == repo).scalar_subquery()
        newest = (
            select(r.id)
            .where(r.operation_id == o.id, r.parent.is_(None), r.cause != str(Cause.PREVIEW))
            .order_by(r.created_at.desc(), r.id.desc())
            .limit(1)
            .correlate(_t(Operation))
            .scalar_subquery()
        )
        active = sorted(str(s) for s in ACTIVE)
        with self._read(session) as s:
            ids = {int(i) for i in s.execute(select(newest).where(o.repo_id == repo_id)).scalars() if i is not None}
            # The active runs of every repo (few) by the status index alone, then this repo's: joined
            # to operations, the database would rather walk each operation's whole history.
            op_ids = {int(i) for i in s.execute(select(o.id).where(o.repo_id == repo_id)).scalars()}
            active_rows = s.execute(
                select(r.id, r.operation_id).where(
                    r.status.in_(active), func.coalesce(r.parent, "") == "", r.cause != str(Cause.PREVIEW)
                )
            ).all()
            ids |= {int(run_id) for run_id, op_id in active_rows if op_id in op_ids}
            found: list[PlannerRun] = []
            wanted = sorted(ids)
            kinds = None if spec_kinds is None else sorted(set(spec_kinds))
            spec = r.spec if kinds is None else case((r.kind.in_(kinds), r.spec), else_=None)
            columns = [getattr(r, f) for f in PlannerRun._fields[:-2]]
            for chunk_start in range(0, len(wanted), 500):
                chunk = wanted[chunk_start : chunk_start + 500]
                stmt = (
                    select(*columns, spec, o.op_key).join(_t(Operation), o.id == r.operation_id).where(r.id.in_(chunk))
                )
                found += (PlannerRun._make(row) for row in s.execute(stmt))
        return sorted(found, key=lambda run: (run.created_at, run.id))

    def finished_runs_to_forget(
        self, before: dt.datetime, keep_per_op: int, session: Session | None = None
    ) -> list[str]:
        """Done runs finished before `before` that are not among their operation's newest
        `keep_per_op`: what retention may delete (oldest first)."""
        r = _t(Run).c
        rank = (
            func.row_number()
            .over(partition_by=r.operation_id, order_by=(r.created_at.desc(), r.id.desc()))
            .label("rank")
        )
        ranked = select(r.id, r.name, r.status, r.finished_at, r.created_at, rank).subquery()
        stmt = (
            select(ranked.c.name)
            .where(
                ranked.c.rank > keep_per_op,
                ranked.c.status.in_(sorted(str(s) for s in DONE)),
                ranked.c.finished_at.is_not(None),
                ranked.c.finished_at < before,
            )
            .order_by(ranked.c.created_at, ranked.c.id)
        )
        with self._read(session) as s:
            return [str(n) for n in s.execute(stmt).scalars()]

    def delete_runs(self, names: Iterable[str], session: Session | None = None) -> int:
        """Delete runs with their history and details; ticks and consumed events that point at
        them keep their row (so a tick still never fires twice) without the link."""
        from reconciler.tracking.tables import ConsumedTransition, RunMetric, RunOutput  # not a reader's tables

        wanted = list(names)
        if not wanted:
            return 0
        r = _t(Run)
        with self._tx(session) as s:
            ids = [int(i) for i in s.execute(select(r.c.id).where(r.c.name.in_(wanted))).scalars()]
            if not ids:
                return 0
            t, ct = _t(ScheduleTick), _t(ConsumedTransition)
            conn = s.connection()
            conn.execute(update(t).where(t.c.run_id.in_(ids)).values(run_id=None))
            conn.execute(update(ct).where(ct.c.run_id.in_(ids)).values(run_id=None))
            conn.execute(delete(_t(StatusChange)).where(_t(StatusChange).c.run_id.in_(ids)))
            conn.execute(delete(_t(OrchestratedRun)).where(_t(OrchestratedRun).c.run_id.in_(ids)))
            conn.execute(delete(_t(RunMetric)).where(_t(RunMetric).c.run_id.in_(ids)))
            conn.execute(delete(_t(RunOutput)).where(_t(RunOutput).c.run_id.in_(ids)))
            result: CursorResult[Any] = conn.execute(delete(r).where(r.c.id.in_(ids)))
            return int(result.rowcount)


def preview_cause_prefix(number: int) -> str:
    return f"pr-{number}@"


def preview_number(cause_id: str) -> int | None:
    """The pull request a preview's cause id (`preview_cause`) names; None for anything else."""
    number, at, _ = cause_id.removeprefix("pr-").partition("@")
    return int(number) if cause_id.startswith("pr-") and at and number.isdigit() else None


def preview_cause(number: int, head_sha: str) -> str:
    """The cause id of a preview run: the pull request and the head it ran for."""
    return f"{preview_cause_prefix(number)}{head_sha}"
