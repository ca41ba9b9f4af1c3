"""The production daemon in process: its workers survive every kind of failing work item, and a
status and its commit status are recorded together or not at all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.backends.local import LocalBackend
from reconciler.config import Settings
from reconciler.daemon import CheckPullRequest, Daemon, FireTicks, Gauges, ReconcileRepo, Resume, Retention
from reconciler.model import Cause, OpKey, RunRequest, StatusTransition
from reconciler.statuses import Status
from reconciler.tracking import Store, upgrade
from reconciler.wiring import build_daemon
from tests.infra.git_server import GitRepoFactory
from tests.infra.wait import wait_until

T0 = dt.datetime(2025, 5, 6, 7, 8, tzinfo=dt.UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade(db_url)
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def daemon(store: Store, tmp_path: Path, git_repo_factory: GitRepoFactory) -> Iterator[Daemon]:
    git = git_repo_factory.create("models", {"README.md": "models\n"})
    settings = Settings(
        repos=[{"name": "models", "url": git.file_url, "interval": 3600}],  # type: ignore[list-item]
        data_dir=tmp_path / "data",
        database="unused",
    )
    backend = LocalBackend.in_data_dir(tmp_path / "data", instance="test", interval=0.05)
    made = build_daemon(settings, store, backend, timer=False)
    try:
        yield made
    finally:
        made.stop(deadline=10)


ITEMS = [ReconcileRepo("models"), CheckPullRequest("models", 7), FireTicks(), Resume(), Gauges(), Retention()]


@pytest.mark.parametrize("item", ITEMS, ids=lambda i: type(i).__name__)
def test_a_failing_item_is_counted_and_retried_and_the_workers_live_on(daemon: Daemon, item: Any) -> None:
    calls: list[int] = []

    def flaky(_item: Any) -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise RuntimeError("the database went away")  # what any handler may meet

    daemon._handlers[type(item)] = flaky
    daemon.start(workers=2, serve=False)
    daemon.queue.add(item)
    wait_until(lambda: len(calls) >= 4, timeout=30, what="the item to be retried until it succeeds")
    kind = {ReconcileRepo: "reconcile", CheckPullRequest: "pull_request", FireTicks: "ticks", Resume: "resume"}.get(
        type(item), type(item).__name__.lower()
    )
    assert daemon.metrics.work_errors.labels(kind=kind)._value.get() == 3
    assert all(t.is_alive() for t in daemon._threads), "a worker died"
    assert [c.name for c in daemon.liveness_checks() if c.run()] == []


def test_healthz_fails_when_a_worker_is_gone(daemon: Daemon) -> None:
    daemon.start(workers=1, serve=False)
    [check] = daemon.liveness_checks()
    assert check.run() is None
    daemon.queue.shut_down()  # the worker returns, as a dead one would not be there
    wait_until(lambda: not daemon._threads[0].is_alive(), timeout=10, what="the worker to end")
    assert "worker-0" in (check.run() or "")


def test_a_status_and_its_commit_status_commit_together_or_not_at_all(daemon: Daemon, store: Store) -> None:
    """The forge's outbox row is written in the transaction of the transition it reports: when
    writing it fails (the process killed there, say), the transition is not recorded either."""
    store.ensure_repo("models", "file:///x", "main", T0)
    op = OpKey("models", "ops/a.yaml", "a")
    store.upsert_operation(str(op), "models", "one-shot", T0, spec_hash="h", commit_sha="c1")
    request = RunRequest("a-1", op, "job", "h", {"run": {"kind": "job"}}, Cause.COMMIT, "c1", "c1")
    with store.unit_of_work() as tx:
        daemon.applier.record(request, T0, session=tx)

    class Crash(Exception):
        pass

    class DyingReporter:
        queued: list[str] = []

        def run_status(self, run: Any, op: Any, status: Any, now: Any, **kw: Any) -> bool:
            store.enqueue_commit_status(
                repo="models", sha="c1", context="polyaxon/a", state="success", now=now, session=kw["session"]
            )  # type: ignore[arg-type]
            raise Crash("killed between the transition and its outbox row")

        def wake(self) -> None:
            pass

    daemon.applier.reporter = DyingReporter()  # type: ignore[assignment]
    with pytest.raises(Crash):
        daemon.applier.transition(StatusTransition("a-1", Status.SUCCEEDED, T0))
    run = store.run("a-1")
    assert run is not None and run.status == Status.CREATED
    assert [h.status for h in store.history("a-1")] == [Status.CREATED]
    assert store.outbox("c1") == []
