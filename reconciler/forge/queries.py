"""The few tracking-DB queries the forge integration needs that the tracking `Store` lacks.

Kept here rather than in `reconciler.tracking` so the tracking module stays as its owners wrote
it; they use its tables and sessions, and the same SQL works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from reconciler.tracking import CauseKind, NotFound, Operation, Repo, Run, Store


def _table(model: Any) -> Any:
    return model.__table__


def preview_cause_prefix(number: int) -> str:
    return f"pr-{number}@"


def preview_cause(number: int, head_sha: str) -> str:
    """The cause id of a preview run: the pull request and the head it ran for."""
    return f"{preview_cause_prefix(number)}{head_sha}"


def ensure_operation(store: Store, session: Session, *, op_key: str, repo: str, mode: str, now: dt.datetime) -> None:
    """Make the operation row exist without touching an existing one.

    `Store.upsert_operation` records a spec as the last good one on the tracked branch; a
    preview comes from a pull request, so it must not, and an operation that only exists in the
    pull request gets a row with no last good spec.
    """
    repo_id = session.execute(select(_table(Repo).c.id).where(_table(Repo).c.name == repo)).scalar_one_or_none()
    if repo_id is None:
        raise NotFound(f"repo {repo!r} is not tracked")
    values = {"op_key": op_key, "repo_id": repo_id, "mode": mode, "updated_at": now}
    table = _table(Operation)
    if store.dialect == "postgresql":
        stmt: Any = pg_insert(table).values(**values).on_conflict_do_nothing(index_elements=["op_key"])
    else:
        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=["op_key"])
    session.connection().execute(stmt)


def preview_runs(store: Store, repo: str, number: int, session: Session | None = None) -> list[Run]:
    """Every preview run of pull request `number` of `repo`, oldest first."""
    r, o, p = _table(Run).c, _table(Operation).c, _table(Repo).c
    stmt = (
        select(Run)
        .join(Operation, o.id == r.operation_id)
        .join(Repo, p.id == o.repo_id)
        .where(
            p.name == repo,
            r.cause_kind == str(CauseKind.PREVIEW),
            r.cause_id.startswith(preview_cause_prefix(number), autoescape=True),
        )
        .order_by(r.id)
    )
    if session is not None:
        return list(session.execute(stmt).scalars())
    with store.unit_of_work() as s:
        return list(s.execute(stmt).scalars())


def op_key_of(store: Store, run: Run, session: Session | None = None) -> str:
    stmt = select(_table(Operation).c.op_key).where(_table(Operation).c.id == run.operation_id)
    if session is not None:
        return str(session.execute(stmt).scalar_one())
    with store.unit_of_work() as s:
        return str(s.execute(stmt).scalar_one())
