"""Batch writes (issue 18): runs, backend references and operations written a batch at a time,
in a number of statements that does not grow with the batch, with the one-row guarantees kept
(a run once per cause, one bad row never losing the others), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from reconciler.model import Cause
from reconciler.statuses import Status
from reconciler.tracking import NewRunRow, NotFound, OperationRow, RunNameConflict, Store


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements the store sends to the database inside the block."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


def writes(seen: list[str]) -> list[str]:
    return [s for s in seen if s.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")]


def ops(store: Store, n: int, now: dt.datetime) -> list[str]:
    keys = [f"r:f.yaml#op{i:04d}" for i in range(n)]
    store.ensure_repo("r", "file:///srv/r.git", "main", now)
    store.record_operations("r", [OperationRow(k, "run", spec_hash="h", commit_sha="c1") for k in keys], now)
    return keys


def row(op_key: str, name: str, cause_id: str = "c1", **kw: Any) -> NewRunRow:
    return NewRunRow(
        op_key=op_key, cause=Cause.COMMIT, cause_id=cause_id, name=name, spec_hash="h", backend="local", **kw
    )


def test_a_batch_of_runs_is_recorded_in_statements_that_do_not_grow_with_it(store: Store, now: dt.datetime) -> None:
    keys = ops(store, 600, now)
    with statements(store) as few:
        store.create_runs([row(k, f"run-{i}") for i, k in enumerate(keys[:10])], now)
    with statements(store) as many:
        store.create_runs([row(k, f"run-{i}") for i, k in enumerate(keys[10:], start=10)], now)
    assert len(few) <= 8, few
    # 590 rows: one more statement per 500-row chunk of each kind at most, never one per run.
    assert len(many) <= len(few) + 5, many
    assert len(writes(many)) <= 6
    assert len(store.runs_named([f"run-{i}" for i in range(600)])) == 600
    run = store.run("run-599")
    assert run is not None and run.status == Status.CREATED
    assert [c.status for c in store.history("run-599")] == [Status.CREATED]


def test_a_batch_creates_each_run_once(store: Store, now: dt.datetime) -> None:
    keys = ops(store, 3, now)
    first = store.create_runs([row(k, f"run-{i}") for i, k in enumerate(keys)], now)
    assert [r.created for r in first] == [True, True, True]  # type: ignore[union-attr]
    # Asked again (a retry after a crash), and the same cause twice in one batch: no new run.
    again = store.create_runs([row(keys[0], "run-0"), row(keys[1], "run-1"), row(keys[1], "run-1")], now)
    assert [r.created for r in again] == [False, False, False]  # type: ignore[union-attr]
    assert [r.run.name for r in again] == ["run-0", "run-1", "run-1"]  # type: ignore[union-attr]
    assert [c.status for c in store.history("run-1")] == [Status.CREATED]  # one first history row
    dup = store.create_runs([row(keys[2], "run-x", cause_id="c2"), row(keys[2], "run-y", cause_id="c2")], now)
    assert [r.created for r in dup] == [True, False]  # type: ignore[union-attr]
    assert [r.run.name for r in dup] == ["run-x", "run-x"]  # type: ignore[union-attr]
    assert store.run("run-y") is None


def test_one_bad_row_leaves_the_others_recorded(store: Store, now: dt.datetime) -> None:
    keys = ops(store, 3, now)
    store.create_runs([row(keys[0], "taken")], now)
    results = store.create_runs(
        [
            row(keys[1], "good-1"),
            row("r:f.yaml#missing", "orphan"),  # an operation not tracked
            row(keys[2], "taken"),  # a name another (operation, cause) holds
            row(keys[2], "good-2", cause_id="c2"),
        ],
        now,
    )
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], RunNameConflict)
    assert [results[0].created, results[3].created] == [True, True]  # type: ignore[union-attr]
    assert {r.name for r in store.runs_named(["good-1", "good-2", "orphan"])} == {"good-1", "good-2"}


def test_backend_references_are_written_in_one_statement(store: Store, now: dt.datetime) -> None:
    keys = ops(store, 300, now)
    store.create_runs([row(k, f"run-{i}") for i, k in enumerate(keys)], now)
    later = now + dt.timedelta(seconds=5)
    refs = {f"run-{i}": f"job/run-{i}" for i in range(300)} | {"no-such-run": "job/x"}
    with statements(store) as seen:
        assert store.set_backend_refs(refs, later) == 300
    assert len(writes(seen)) == 1
    run = store.run("run-299")
    assert run is not None and run.backend_ref == "job/run-299" and run.updated_at == later


def test_recording_unchanged_operations_writes_nothing(store: Store, now: dt.datetime) -> None:
    keys = ops(store, 600, now)
    same = [OperationRow(k, "run", spec_hash="h", commit_sha="c2") for k in keys]
    later = now + dt.timedelta(minutes=1)
    with statements(store) as seen:
        assert store.record_operations("r", same, later) == []
    assert writes(seen) == []
    op = store.operation(keys[0])
    assert op is not None and op.updated_at == now and op.last_good_commit_sha == "c1"


def test_only_the_changed_operations_are_written(store: Store, now: dt.datetime) -> None:
    keys = ops(store, 600, now)
    later = now + dt.timedelta(minutes=1)
    rows = [OperationRow(k, "run", spec_hash="h", commit_sha="c2") for k in keys]
    rows[3] = OperationRow(keys[3], "run", spec_hash="h2", commit_sha="c2")  # its spec changed
    rows[4] = OperationRow(keys[4], "schedule", spec_hash="h", commit_sha="c2")  # its mode changed
    rows[5] = OperationRow(keys[5], "run", commit_sha="c2", valid=False)  # now invalid
    rows.append(OperationRow("r:g.yaml#new", "run", spec_hash="n", commit_sha="c2"))  # new
    with statements(store) as seen:
        written = store.record_operations("r", rows, later)
    assert sorted(written) == sorted([keys[3], keys[4], keys[5], "r:g.yaml#new"])
    assert len(writes(seen)) == 2  # the missing rows, then the changed ones: whatever their number
    changed = store.operation(keys[3])
    assert changed is not None and changed.last_good_spec_hash == "h2" and changed.last_good_commit_sha == "c2"
    assert changed.updated_at == later
    invalid = store.operation(keys[5])
    # Invalid keeps its last good spec (safety rule 1) and says since when and at which commit.
    assert invalid is not None and invalid.last_good_spec_hash == "h" and invalid.invalid_since == later
    assert invalid.invalid_commit_sha == "c2"
    mode = store.operation(keys[4])
    assert mode is not None and mode.mode == "schedule"
    new = store.operation("r:g.yaml#new")
    assert new is not None and new.last_good_spec_hash == "n"
    untouched = store.operation(keys[6])
    assert untouched is not None and untouched.updated_at == now
    # Still invalid at a later commit: nothing to write, `invalid_since` stays the first.
    assert store.record_operations("r", [OperationRow(keys[5], "run", commit_sha="c3", valid=False)], later) == []
    # Valid again with the same spec: the invalid mark goes.
    assert store.record_operations("r", [OperationRow(keys[5], "run", spec_hash="h", commit_sha="c4")], later) == [
        keys[5]
    ]
    healed = store.operation(keys[5])
    assert healed is not None and healed.invalid_since is None and healed.last_good_commit_sha == "c4"


def test_a_removed_operation_that_comes_back_is_written(store: Store, now: dt.datetime) -> None:
    keys = ops(store, 2, now)
    later = now + dt.timedelta(minutes=1)
    assert store.mark_removed("r", [keys[0]], later) == [keys[1]]
    back = [OperationRow(k, "run", spec_hash="h", commit_sha="c2") for k in keys]
    assert store.record_operations("r", back, later) == [keys[1]]
    op = store.operation(keys[1])
    assert op is not None and op.removed_at is None


def test_a_commits_plan_is_kept_from_the_first_reconcile_and_never_read_back_by_later_ones(
    store: Store, now: dt.datetime
) -> None:
    store.ensure_repo("r", "file:///srv/r.git", "main", now)
    first = [{"action": "create", "op": f"r:f.yaml#op{i}", "run": f"run-{i}", "reason": "new"} for i in range(3)]
    store.record_commit("r", "c1", "main", now, now, valid=True, plan=first)
    later = now + dt.timedelta(minutes=1)
    built: list[int] = []

    def again() -> Iterator[dict[str, str]]:
        for i in range(3):
            built.append(i)
            yield {"action": "noop", "op": f"r:f.yaml#op{i}", "run": f"run-{i}", "reason": "unchanged"}

    store.record_commit("r", "c1", "main", now, later, valid=True, plan=again())
    assert built == []  # a plan is held already: the new one is not even built
    commit = store.commit("r", "c1")
    assert commit is not None and commit.plan == first and commit.recorded_at == later
    last = store.last_commit("r")
    assert last is not None and last.sha == "c1"
    # A commit recorded before it was applied gets the plan of the reconcile that applies it.
    store.record_commit("r", "c2", "main", later, later)
    store.record_commit("r", "c2", "main", later, later, valid=True, plan=again())
    held = store.commit("r", "c2")
    assert built == [0, 1, 2] and held is not None and [p["action"] for p in held.plan or []] == ["noop"] * 3
