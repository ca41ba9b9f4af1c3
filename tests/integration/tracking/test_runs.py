"""Runs and their status history, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.model import Cause
from reconciler.statuses import Status
from reconciler.tracking import IllegalTransition, NotFound, RunNameConflict, Store, run_uuid

from .helpers import commit_run

S = dt.timedelta(seconds=1)


def test_create_run_is_idempotent_on_op_and_cause(seeded: Store, now: dt.datetime) -> None:
    first = commit_run(seeded, "r:a.yaml#a", "c1", now)
    again = commit_run(seeded, "r:a.yaml#a", "c1", now + 5 * S)
    assert first.created and not again.created
    assert again.run.id == first.run.id
    assert again.run.created_at == now  # the original, untouched
    assert first.run.uuid == run_uuid(first.run.name)
    assert [c.status for c in seeded.history(first.run)] == [Status.CREATED]
    assert len(seeded.runs_by_op("r:a.yaml#a")) == 1


def test_other_causes_make_other_runs(seeded: Store, now: dt.datetime) -> None:
    commit_run(seeded, "r:a.yaml#a", "c1", now)
    commit_run(seeded, "r:a.yaml#a", "c2", now + S)
    tick = seeded.create_run(
        op_key="r:a.yaml#a",
        cause=Cause.SCHEDULE,
        cause_id="c1",  # same id, other kind: another cause
        name="a-tick",
        spec_hash="h",
        backend="local",
        now=now + 2 * S,
        status=Status.ON_SCHEDULE,
    )
    assert tick.created and tick.run.status == Status.ON_SCHEDULE
    assert [(r.cause, r.cause_id) for r in seeded.runs_by_op("r:a.yaml#a")] == [
        (Cause.SCHEDULE, "c1"),
        (Cause.COMMIT, "c2"),
        (Cause.COMMIT, "c1"),
    ]


def test_a_name_owned_by_another_cause_is_a_conflict(seeded: Store, now: dt.datetime) -> None:
    commit_run(seeded, "r:a.yaml#a", "c1", now)
    with pytest.raises(RunNameConflict):
        seeded.create_run(
            op_key="r:b.yaml#b",
            cause=Cause.MANUAL,
            cause_id="m1",
            name=commit_run(seeded, "r:a.yaml#a", "c1", now).run.name,
            spec_hash="h",
            backend="local",
            now=now,
        )
    assert seeded.runs_by_op("r:b.yaml#b") == []


def test_unknown_operation_is_not_found(seeded: Store, now: dt.datetime) -> None:
    with pytest.raises(NotFound):
        commit_run(seeded, "r:nope.yaml#nope", "c1", now)


def test_transitions_are_recorded_in_order_with_reason_and_message(seeded: Store, now: dt.datetime) -> None:
    run = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    path = [Status.COMPILED, Status.QUEUED, Status.RUNNING, Status.SUCCEEDED]
    for i, status in enumerate(path, start=1):
        change = seeded.transition(run, status, at=now + i * S, reason=f"R{i}", message=f"m{i}")
        assert change is not None and change.seq == i
    history = seeded.history(run.name)
    assert [(c.seq, c.status, c.previous) for c in history] == [
        (0, Status.CREATED, None),
        (1, Status.COMPILED, Status.CREATED),
        (2, Status.QUEUED, Status.COMPILED),
        (3, Status.RUNNING, Status.QUEUED),
        (4, Status.SUCCEEDED, Status.RUNNING),
    ]
    assert [c.reason for c in history[1:]] == ["R1", "R2", "R3", "R4"]
    assert history[-1].message == "m4"
    assert history[-1].at == now + 4 * S and history[-1].at.tzinfo is not None
    stored = seeded.run(run.name)
    assert stored is not None
    assert stored.status == Status.SUCCEEDED
    assert stored.started_at == now + 3 * S
    assert stored.finished_at == now + 4 * S
    assert run.status == Status.SUCCEEDED  # the caller's object follows


def test_repeating_the_current_status_is_a_no_op(seeded: Store, now: dt.datetime) -> None:
    run = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    assert seeded.transition(run, Status.RUNNING, at=now + S) is not None
    assert seeded.transition(run, Status.RUNNING, at=now + 2 * S) is None
    assert len(seeded.history(run)) == 2


@pytest.mark.parametrize("done", [Status.SUCCEEDED, Status.FAILED, Status.STOPPED, Status.SKIPPED])
def test_a_done_run_never_goes_back(seeded: Store, now: dt.datetime, done: Status) -> None:
    run = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    seeded.transition(run, done, at=now + S)
    for target in (Status.RUNNING, Status.QUEUED, Status.RETRYING, Status.FAILED, Status.SUCCEEDED):
        if target == done:
            continue
        with pytest.raises(IllegalTransition) as info:
            seeded.transition(run, target, at=now + 2 * S)
        assert info.value.current == done and info.value.target == target
    stored = seeded.run(run.name)
    assert stored is not None and stored.status == done
    assert len(seeded.history(run)) == 2


def test_illegal_transition_changes_nothing(seeded: Store, now: dt.datetime) -> None:
    run = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    seeded.transition(run, Status.RUNNING, at=now + S)
    with pytest.raises(IllegalTransition, match="backwards"):
        seeded.transition(run, Status.QUEUED, at=now + 2 * S)
    with pytest.raises(IllegalTransition):
        seeded.transition(run, Status.DONE, at=now + 2 * S)
    assert [c.status for c in seeded.history(run)] == [Status.CREATED, Status.RUNNING]


def test_retrying_is_the_way_back(seeded: Store, now: dt.datetime) -> None:
    run = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    for i, status in enumerate([Status.RUNNING, Status.RETRYING, Status.QUEUED, Status.RUNNING], 1):
        seeded.transition(run, status, at=now + i * S)
    stored = seeded.run(run.name)
    assert stored is not None and stored.started_at == now + S  # first start is kept


def test_naive_datetimes_are_refused(seeded: Store, now: dt.datetime) -> None:
    run = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    with pytest.raises(Exception, match="timezone-aware"):
        seeded.transition(run, Status.RUNNING, at=now.replace(tzinfo=None))
    assert len(seeded.history(run)) == 1


def test_times_in_other_zones_come_back_as_utc(seeded: Store, now: dt.datetime) -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    run = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    seeded.transition(run, Status.RUNNING, at=(now + S).astimezone(plus2))
    change = seeded.history(run)[-1]
    assert change.at == now + S and change.at.utcoffset() == dt.timedelta(0)


def test_queries_by_op_commit_and_status(seeded: Store, now: dt.datetime) -> None:
    a1 = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    a2 = commit_run(seeded, "r:a.yaml#a", "c2", now + S).run
    b1 = commit_run(seeded, "r:b.yaml#b", "c1", now + 2 * S).run
    seeded.transition(a1, Status.SUCCEEDED, at=now + 3 * S)
    seeded.transition(b1, Status.RUNNING, at=now + 3 * S)

    assert [r.name for r in seeded.runs_by_op("r:a.yaml#a")] == [a2.name, a1.name]
    assert [r.name for r in seeded.runs_by_op("r:a.yaml#a", limit=1)] == [a2.name]
    assert {r.name for r in seeded.runs_by_commit("c1")} == {a1.name, b1.name}
    assert [r.name for r in seeded.runs_by_status(Status.RUNNING)] == [b1.name]
    assert {r.name for r in seeded.runs_by_status([Status.CREATED, Status.SUCCEEDED])} == {a1.name, a2.name}


def test_latest_status_per_op(seeded: Store, now: dt.datetime) -> None:
    seeded.ensure_repo("other", "file:///srv/o.git", "main", now)
    seeded.upsert_operation("other:x.yaml#x", "other", "run", now, spec_hash="h")
    a1 = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    seeded.transition(a1, Status.FAILED, at=now + S)
    a2 = commit_run(seeded, "r:a.yaml#a", "c2", now + 2 * S).run
    seeded.transition(a2, Status.RUNNING, at=now + 3 * S)
    b1 = commit_run(seeded, "r:b.yaml#b", "c1", now).run
    seeded.transition(b1, Status.SUCCEEDED, at=now + 4 * S)
    x1 = commit_run(seeded, "other:x.yaml#x", "c9", now).run

    latest = seeded.latest_status_per_op()
    assert {k: (v.run_name, v.status) for k, v in latest.items()} == {
        "r:a.yaml#a": (a2.name, Status.RUNNING),
        "r:b.yaml#b": (b1.name, Status.SUCCEEDED),
        "other:x.yaml#x": (x1.name, Status.CREATED),
    }
    assert latest["r:a.yaml#a"].updated_at == now + 3 * S
    assert set(seeded.latest_status_per_op(repo="other")) == {"other:x.yaml#x"}


def test_backend_ref_is_recorded(seeded: Store, now: dt.datetime) -> None:
    run = commit_run(seeded, "r:a.yaml#a", "c1", now).run
    seeded.set_backend_ref(run, "default/batch/v1/Job/a-123", now + S)
    stored = seeded.run(run.name)
    assert stored is not None and stored.backend_ref == "default/batch/v1/Job/a-123"


def test_commits_and_operations_keep_validation_state(seeded: Store, now: dt.datetime) -> None:
    c = seeded.record_commit("r", "c2", "main", now - S, now)
    assert c.valid is None and c.errors == []
    errors = [{"file": "a.yaml", "line": 3, "message": "unknown field 'kindd'"}]
    seeded.record_commit("r", "c2", "main", now - S, now + S, valid=False, errors=errors)
    again = seeded.record_commit("r", "c2", "main", now - S, now + 2 * S)  # no result: keeps it
    assert again.valid is False and again.errors == errors
    stored = seeded.commit("r", "c2")
    assert stored is not None and stored.errors == errors and stored.committed_at == now - S

    seeded.upsert_operation("r:a.yaml#a", "r", "run", now + S, commit_sha="c2", valid=False)
    seeded.upsert_operation("r:a.yaml#a", "r", "run", now + 2 * S, commit_sha="c3", valid=False)
    op = seeded.operation("r:a.yaml#a")
    assert op is not None
    assert op.last_good_spec_hash == "h-a" and op.last_good_commit_sha == "c1"  # kept (safety rule 1)
    assert op.invalid_since == now + S and op.invalid_commit_sha == "c3"
    seeded.upsert_operation("r:a.yaml#a", "r", "schedule", now + 3 * S, spec_hash="h-a2", commit_sha="c4")
    op = seeded.operation("r:a.yaml#a")
    assert op is not None
    assert (op.last_good_spec_hash, op.invalid_since, op.mode) == ("h-a2", None, "schedule")
    assert [o.op_key for o in seeded.operations("r")] == ["r:a.yaml#a", "r:b.yaml#b"]
