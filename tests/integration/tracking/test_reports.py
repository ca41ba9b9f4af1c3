"""What runs report (metric values, outputs), the run-token key, and the dashboard's read
queries (pages of runs and commits, a parent's children), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.model import Cause
from reconciler.tracking import NotFound, Point, ReportLimit, Store
from reconciler.tracking import reports as reports_module

S = dt.timedelta(seconds=1)


def make_run(store: Store, name: str, at: dt.datetime, op: str = "r:a.yaml#a", **kw: object) -> None:
    store.create_run(
        op_key=op, cause=Cause.COMMIT, cause_id=name, name=name, spec_hash="h", backend="local", now=at, **kw
    )  # type: ignore[arg-type]


def test_metric_values_keep_their_order_and_steps_and_outputs_their_latest(seeded: Store, now: dt.datetime) -> None:
    make_run(seeded, "t1", now)
    assert seeded.record_report("t1", [Point("loss", None, 0.9), Point("acc", 3, 0.5)], {"loss": 0.9}, now) == 2
    assert seeded.record_report("t1", [Point("loss", None, 0.7), Point("loss", 10, 0.6)], {"model": "m"}, now + S) == 2
    seeded.record_report("t1", [Point("loss", None, 0.5)], {"loss": 0.5, "model": {"path": "m2"}}, now + 2 * S)
    series = seeded.metric_series("t1")
    assert [(p.step, p.value) for p in series["loss"]] == [(0, 0.9), (1, 0.7), (10, 0.6), (11, 0.5)]
    assert [(p.step, p.value) for p in series["acc"]] == [(3, 0.5)]
    assert seeded.reported_outputs("t1") == {"loss": 0.5, "model": {"path": "m2"}}
    assert seeded.latest_metrics(["t1", "t2"]) == {"t1": {"acc": 0.5, "loss": 0.5}, "t2": {}}
    assert seeded.metric_of_runs(["t1"], "loss") == {"t1": [(0, 0.9), (1, 0.7), (10, 0.6), (11, 0.5)]}
    with pytest.raises(NotFound):
        seeded.record_report("nope", [Point("loss", None, 1.0)], {}, now)


def test_a_run_keeps_a_bounded_number_of_values_and_a_refused_report_records_nothing(
    seeded: Store, now: dt.datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports_module, "MAX_POINTS_PER_RUN", 3)
    make_run(seeded, "t1", now)
    seeded.record_report("t1", [Point("loss", None, 1.0), Point("loss", None, 0.9)], {}, now)
    with pytest.raises(ReportLimit):
        seeded.record_report("t1", [Point("loss", None, 0.8), Point("loss", None, 0.7)], {"x": 1}, now)
    assert len(seeded.metric_series("t1")["loss"]) == 2 and seeded.reported_outputs("t1") == {}


def test_forgetting_a_run_forgets_what_it_reported(seeded: Store, now: dt.datetime) -> None:
    make_run(seeded, "t1", now)
    seeded.record_report("t1", [Point("loss", None, 1.0)], {"loss": 1.0}, now)
    assert seeded.delete_runs(["t1"]) == 1
    make_run(seeded, "t1", now + S)  # the same name again is a new run, with nothing reported
    assert seeded.metric_series("t1") == {} and seeded.reported_outputs("t1") == {}


def test_the_run_token_key_is_made_once(store: Store, now: dt.datetime) -> None:
    first = store.run_token_key(now)
    assert len(first) == 64 and store.run_token_key(now + S) == first


def test_pages_of_runs_and_commits_by_keyset(seeded: Store, now: dt.datetime) -> None:
    for i in range(5):  # two runs share each creation time: ties are broken by id
        make_run(seeded, f"run-{i}", now + (i // 2) * S, commit_sha=f"c{i}")
    everything = [r.name for r, _ in seeded.list_runs()]
    pages, before = [], None
    while True:
        page = seeded.list_runs(limit=2, before=before)
        if not page:
            break
        pages += [r.name for r, _ in page]
        last = page[-1][0]
        assert last.id is not None
        before = (last.created_at, last.id)
    assert pages == everything and len(set(pages)) == 5
    assert [r.name for r, _ in seeded.list_runs(since=now + 2 * S)] == ["run-4"]
    assert [r.name for r, _ in seeded.list_runs(commit="c3")] == ["run-3"]
    assert seeded.list_runs(cause="matrix") == []

    for i in range(3):
        seeded.record_commit("r", f"{i:x}" * 40, "main", now, now + i * S, valid=i != 1, plan=[{"action": "noop"}])
    assert [c.sha[:1] for c in seeded.commits("r")] == ["2", "1", "0"]
    assert [c.sha[:1] for c in seeded.commits("r", valid=False)] == ["1"]
    newest = seeded.commits("r", limit=1)[0]
    assert newest.id is not None
    assert [c.sha[:1] for c in seeded.commits("r", before=(newest.recorded_at, newest.id))] == ["1", "0"]
    assert [c.sha for c in seeded.commit_by_prefix("r", "1" * 7)] == ["1" * 40]
    assert seeded.commit_by_prefix("r", "%") == []  # LIKE wildcards are escaped


def test_a_plan_is_kept_from_the_reconcile_that_applied_the_commit(seeded: Store, now: dt.datetime) -> None:
    sha = "a" * 40
    seeded.record_commit("r", sha, "main", now, now, valid=True, plan=[{"action": "create", "op": "r:a.yaml#a"}])
    seeded.record_commit("r", sha, "main", now, now + S, valid=True, plan=[{"action": "noop", "op": "r:a.yaml#a"}])
    commit = seeded.commit("r", sha)
    assert commit is not None and commit.plan == [{"action": "create", "op": "r:a.yaml#a"}]


def test_children_of_a_run_with_their_details(seeded: Store, now: dt.datetime) -> None:
    make_run(seeded, "parent", now)
    seeded.upsert_operation("r:a.yaml#a.trial", "r", "matrix-trial", now)
    for i in (1, 0):
        seeded.create_run(
            op_key="r:a.yaml#a.trial", cause=Cause.MATRIX, cause_id=f"matrix:parent:{i}", name=f"trial-{i}",
            spec_hash="h", backend="local", now=now, parent="parent", trial_index=i, params={"lr": i},
        )  # fmt: skip
    kids = seeded.child_runs("parent")
    assert [(r.name, key, d.trial_index if d else None) for r, key, d in kids] == [
        ("trial-0", "r:a.yaml#a.trial", 0),
        ("trial-1", "r:a.yaml#a.trial", 1),
    ]
    assert seeded.child_runs("trial-0") == []
