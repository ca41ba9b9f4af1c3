"""Each query the other parts rely on is served by an index, on both databases.

The statements are the ones the Store really sends (captured from the engine), explained by the
database itself. On PostgreSQL sequential scans are disabled for the check, so a seq scan left in
the plan means no index can serve the query; on SQLite a bare `SCAN table` means the same.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from reconciler.statuses import CommitState, Status
from reconciler.tracking import Store

from .helpers import commit_run

S = dt.timedelta(seconds=1)


def captured(store: Store, call: Callable[[], object]) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        call()
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)
    assert statements, "the call sent no SELECT"
    return statements


def plan(store: Store, statement: str, parameters: Any) -> str:
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        else:
            rows = [(r[-1],) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()]
        conn.rollback()
    return "\n".join(str(r[0]) for r in rows)


def full_scans(store: Store, text: str, tables: set[str]) -> list[str]:
    if store.dialect == "postgresql":
        found = re.findall(r"Seq Scan on (\w+)", text)
    else:
        found = [m for m, using in re.findall(r"SCAN (\w+)( USING)?", text) if not using]
    return [t for t in found if t in tables]


@pytest.fixture
def populated(seeded: Store, now: dt.datetime) -> Store:
    for i in range(20):
        run = commit_run(seeded, "r:a.yaml#a", f"c{i}", now + i * S).run
        seeded.transition(run, Status.RUNNING, at=now + i * S)
        seeded.enqueue_commit_status(repo="r", sha=f"c{i}", context="polyaxon/a", state=CommitState.PENDING, now=now)
    seeded.set_schedule("r:a.yaml#a", now, now)
    return seeded


# query -> (the call, tables it must not scan whole, indexes that must serve it)
QUERIES: dict[str, tuple[Callable[[Store, dt.datetime], object], set[str], list[str]]] = {
    "runs_by_op": (lambda s, now: s.runs_by_op("r:a.yaml#a"), {"run"}, ["ix_run_op_created"]),
    "runs_by_commit": (lambda s, now: s.runs_by_commit("c3"), {"run"}, ["ix_run_commit_sha"]),
    "runs_by_status": (lambda s, now: s.runs_by_status(Status.RUNNING), {"run"}, ["ix_run_status"]),
    "latest_status_per_op": (lambda s, now: s.latest_status_per_op(), {"run"}, ["ix_run_op_created"]),
    "history": (
        lambda s, now: s.history("r-a-yaml-a-h-c3"),
        {"status_change", "run"},
        # SQLite names the index behind a unique constraint itself.
        [r"(uq_status_change_run_seq|sqlite_autoindex_status_change_\d+)"],
    ),
    "pending_outbox": (
        lambda s, now: s.pending_outbox(now),
        {"commit_status_outbox"},
        ["ix_outbox_pending", "ix_outbox_repo_sha_context"],
    ),
    "claim_outbox": (
        lambda s, now: s.claim_outbox(5, now),
        {"commit_status_outbox"},
        ["ix_outbox_pending", "ix_outbox_repo_sha_context"],
    ),
    "claim_outbox_of_one_forge": (
        lambda s, now: s.claim_outbox(5, now, repos={"r", "other"}),
        {"commit_status_outbox"},
        ["ix_outbox_pending", "ix_outbox_repo_sha_context"],
    ),
    "outbox_backlog": (lambda s, now: s.outbox_backlog(), {"commit_status_outbox"}, ["ix_outbox_pending"]),
    "due_ticks": (lambda s, now: s.due_ticks(now), {"schedule_state"}, ["ix_schedule_state_next_tick"]),
    # A reconcile's read of a repo's runs: each op's newest by the op index, the active ones by status.
    "planner_runs": (
        lambda s, now: s.planner_runs("r"),
        {"run", "operation"},
        ["ix_run_op_created", "ix_run_status", "ix_operation_repo"],
    ),
    "last_reasons": (
        lambda s, now: s.last_reasons([1, 2, 3]),
        {"status_change"},
        [r"(uq_status_change_run_seq|sqlite_autoindex_status_change_\d+)"],
    ),
}


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_query_is_served_by_an_index(populated: Store, now: dt.datetime, query: str) -> None:
    call, tables, indexes = QUERIES[query]
    plans = []
    for statement, parameters in captured(populated, lambda: call(populated, now)):
        text = plan(populated, statement, parameters)
        assert full_scans(populated, text, tables) == [], f"{query} scans a whole table:\n{statement}\n{text}"
        plans.append(text)
    for index in indexes:
        assert any(re.search(index, text) for text in plans), f"{query} does not use {index}:\n" + "\n".join(plans)
