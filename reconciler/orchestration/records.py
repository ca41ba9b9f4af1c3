"""The orchestrator's reads and writes of the tracking DB, inside a caller's transaction.

`tracking.Store` owns the generic rows (runs, history, ticks, subscriptions); the few statements
only orchestration needs (its own tables, locks on a schedule or a parent run, children of a run)
live here, each taking the session of the unit of work that must contain it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from reconciler.model import Cause, OpKey, RunRequest
from reconciler.orchestration.specs import CAUSE_KIND, CAUSE_OF_KIND
from reconciler.statuses import Status
from reconciler.tracking import Store
from reconciler.tracking.engine import READ_ONLY
from reconciler.tracking.errors import NotFound
from reconciler.tracking.tables import (
    ConsumedTransition,
    Operation,
    OrchestratedRun,
    Run,
    ScheduleState,
    ScheduleTick,
)


@contextmanager
def read(store: Store) -> Iterator[Session]:
    """A read-only transaction (on SQLite it does not take the write lock)."""
    engine = store.engine.execution_options(**{READ_ONLY: True})
    with Session(engine, expire_on_commit=False) as s, s.begin():
        yield s


def table(model: type[SQLModel]) -> Any:
    return model.__table__  # type: ignore[attr-defined]


def insert_ignore(s: Session, model: type[SQLModel], values: Mapping[str, Any], conflict: list[str]) -> bool:
    """Insert unless the row collides on `conflict`; True when a row went in."""
    t = table(model)
    if s.get_bind().dialect.name == "postgresql":
        stmt: Any = pg_insert(t).values(**values).on_conflict_do_nothing(index_elements=conflict)
    else:
        stmt = sqlite_insert(t).values(**values).on_conflict_do_nothing(index_elements=conflict)
    return s.connection().execute(stmt.returning(*t.primary_key.columns)).first() is not None


def op_id(s: Session, key: OpKey | str) -> int | None:
    found = s.execute(select(table(Operation).c.id).where(table(Operation).c.op_key == str(key))).scalar_one_or_none()
    return None if found is None else int(found)


def op_key_of(s: Session, operation_id: int) -> OpKey:
    return OpKey.parse(
        str(s.execute(select(table(Operation).c.op_key).where(table(Operation).c.id == operation_id)).scalar_one())
    )


def run_by_name(s: Session, name: str, *, lock: bool = False) -> Run | None:
    stmt = select(Run).where(table(Run).c.name == name)
    if lock:
        stmt = stmt.with_for_update()
    return s.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def orchestrated(s: Session, run_id: int) -> OrchestratedRun | None:
    return s.get(OrchestratedRun, run_id, populate_existing=True)


def children(s: Session, parent: str, origin: str) -> list[tuple[Run, OrchestratedRun]]:
    """The DAG ops or matrix trials of `parent`, in creation order."""
    r, o = table(Run).c, table(OrchestratedRun).c
    stmt = (
        select(Run, OrchestratedRun)
        .join(OrchestratedRun, o.run_id == r.id)
        .where(r.parent == parent, o.origin == origin)
        .order_by(o.trial_index, r.id)
        .execution_options(populate_existing=True)
    )
    return [(run, row) for run, row in s.execute(stmt).all()]


def lock_schedule(s: Session, key: OpKey) -> ScheduleState | None:
    oid = op_id(s, key)
    if oid is None:
        return None
    stmt = select(ScheduleState).where(table(ScheduleState).c.operation_id == oid).with_for_update()
    return s.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def record_tick(
    s: Session,
    operation_id: int,
    at: dt.datetime,
    now: dt.datetime,
    *,
    outcome: str,
    reason: str | None = None,
    message: str | None = None,
    run_id: int | None = None,
    missed_until: dt.datetime | None = None,
    missed_count: int | None = None,
) -> bool:
    """A skipped or missed tick, once: False when the instant was already handled."""
    return insert_ignore(
        s,
        ScheduleTick,
        {
            "operation_id": operation_id,
            "tick_at": at,
            "claimed_at": now,
            "run_id": run_id,
            "outcome": outcome,
            "reason": reason,
            "message": message,
            "missed_until": missed_until,
            "missed_count": missed_count,
        },
        ["operation_id", "tick_at"],
    )


def set_tick_run(s: Session, operation_id: int, at: dt.datetime, run_id: int) -> None:
    t = table(ScheduleTick)
    s.connection().execute(update(t).where(t.c.operation_id == operation_id, t.c.tick_at == at).values(run_id=run_id))


def set_consumed_run(s: Session, subscription_id: int, change_id: int, run_id: int) -> None:
    c = table(ConsumedTransition)
    s.connection().execute(
        update(c).where(c.c.subscription_id == subscription_id, c.c.status_change_id == change_id).values(run_id=run_id)
    )


def create_run(
    store: Store,
    s: Session,
    request: RunRequest,
    *,
    origin: str,
    backend: str,
    now: dt.datetime,
    parent: str | None = None,
    node: str | None = None,
    trial_index: int | None = None,
    meta: Mapping[str, Any] | None = None,
    child_mode: str | None = None,
    status: Status = Status.CREATED,
) -> tuple[Run, bool]:
    """Record `request` (and what orchestration knows of it) once; True when it is new.

    `child_mode` names the mode of a child's own operation row (`dag-op`, `matrix-trial`,
    `hook`), created on first use; a top-level run's operation must already be tracked.
    """
    if child_mode is not None:
        store.upsert_operation(
            str(request.op),
            request.op.repo,
            child_mode,
            now,
            spec_hash=request.spec_hash,
            commit_sha=request.commit,
            session=s,
        )
    elif op_id(s, request.op) is None:
        raise NotFound(f"operation {request.op} is not tracked")
    created = store.create_run(
        op_key=str(request.op),
        cause_kind=CAUSE_KIND[request.cause],
        cause_id=request.cause_id,
        name=request.name,
        spec_hash=request.spec_hash,
        backend=backend,
        now=now,
        commit_sha=request.commit or None,
        status=status,
        kind=request.kind,
        spec=request.effective,
        parent=parent,
        session=s,
    )
    run = created.run
    if created.created:
        assert run.id is not None
        s.add(
            OrchestratedRun(
                run_id=run.id,
                origin=origin,
                cause=request.cause.value,
                node=node,
                trial_index=trial_index,
                params=dict(request.params),
                meta=dict(meta or {}),
                namespace=request.namespace,
                created_at=now,
            )
        )
        s.flush()
    return run, created.created


def request_of(s: Session, run: Run, row: OrchestratedRun | None) -> RunRequest:
    """The request a recorded run was made from (to submit it again after a crash)."""
    cause = Cause(row.cause) if row is not None else CAUSE_OF_KIND[run.cause_kind]
    return RunRequest(
        name=run.name,
        op=op_key_of(s, run.operation_id),
        kind=run.kind or "",
        spec_hash=run.spec_hash,
        effective=dict(run.spec or {}),
        cause=cause,
        cause_id=run.cause_id,
        commit=run.commit_sha or "",
        namespace=row.namespace if row is not None else "default",
        params=dict(row.params) if row is not None else {},
    )


__all__ = [
    "children",
    "create_run",
    "insert_ignore",
    "lock_schedule",
    "op_id",
    "op_key_of",
    "orchestrated",
    "read",
    "record_tick",
    "request_of",
    "run_by_name",
    "set_consumed_run",
    "set_tick_run",
    "table",
]
