"""A batch of new runs submitted concurrently (issue 18), through the production daemon over real
git and a real tracking DB (SQLite and PostgreSQL), with the scripted backend (a fake, named so)
because a transient failure in the middle of a batch cannot be provoked on the real API server.

A transient failure of one submit stops the submits not yet begun and fails the reconcile (it is
retried with backoff), but every run the backend accepted meanwhile has its reference recorded,
every run is recorded once, and the resume pass (every minute; the planner leaves a run recorded
but not started to it) submits the others, none twice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.backends.base import TransientBackendError
from reconciler.sharding import NotOwner
from reconciler.tracking import Tx
from tests.infra.daemon import DaemonHarness, daemon_harness
from tests.infra.git_server import GitRepoFactory

T0 = dt.datetime(2025, 3, 3, 0, 0, tzinfo=dt.UTC)
OPS = 24


def job(i: int) -> str:
    return f"""
        version: 1.1
        kind: operation
        name: j{i:02d}
        component:
          run: {{kind: job, container: {{image: busybox, command: ["true"]}}}}
    """


@pytest.fixture
def h(db_url: str, tmp_path: Path, git_repo_factory: GitRepoFactory) -> Iterator[DaemonHarness]:
    with daemon_harness(tmp_path, db_url, git_repo_factory, start=T0) as h:
        yield h


def test_a_transient_failure_mid_batch_loses_no_submitted_run_and_doubles_none(h: DaemonHarness) -> None:
    h.daemon.applier.submit_concurrency = 4  # the scripted backend says nothing: one at a time
    h.scripted.fail_next_submit(TransientBackendError("the API server went away"))
    files = {f"ops/j{i:02d}.yaml": job(i) for i in range(OPS)}
    with pytest.raises(TransientBackendError, match="went away"):
        h.apply_git(files, T0)
    runs = {run.name: run for run, _ in h.store.list_runs(repo="r")}
    assert len(runs) == OPS  # all recorded, once
    accepted = set(h.names())
    assert len(accepted) == len(h.names())
    # What the backend accepted before the failure surfaced has its reference; nothing else does.
    assert {name for name, run in runs.items() if run.backend_ref} == accepted
    assert all(run.status == "created" for run in runs.values())

    h.reconcile(at=T0 + dt.timedelta(minutes=1))  # recorded, not started: left to resume
    assert sorted(h.names()) == sorted(accepted)
    h.resume(T0 + dt.timedelta(minutes=1))
    names = h.names()
    assert sorted(names) == sorted(runs) and len(set(names)) == OPS  # the rest, none twice
    after = {run.name: run for run, _ in h.store.list_runs(repo="r")}
    assert set(after) == set(runs) and all(run.backend_ref for run in after.values())


class LeaseLostAfter:
    """A fence (FAKE, named so: `Shard.check` needs replicas and leases) that holds the repo until
    the backend has accepted `limit` runs, then says another replica took it."""

    def __init__(self, h: DaemonHarness, limit: int) -> None:
        self.h, self.limit = h, limit

    def check(self, repo: str, session: Tx | None = None) -> None:
        if len(self.h.scripted.submits) >= self.limit:
            raise NotOwner(repo, "its lease was taken over")


def test_a_lease_lost_mid_batch_stops_the_submits_at_the_fence(h: DaemonHarness) -> None:
    workers, limit = 4, 5
    h.daemon.applier.submit_concurrency = workers
    h.daemon.applier.fence = LeaseLostAfter(h, limit)
    files = {f"ops/j{i:02d}.yaml": job(i) for i in range(OPS)}
    with pytest.raises(NotOwner):
        h.apply_git(files, T0)
    runs = {run.name: run for run, _ in h.store.list_runs(repo="r")}
    assert len(runs) == OPS  # recorded under the lease, in one transaction
    accepted = h.names()
    # Each submit asks the fence first: past the limit, only submits already past it go on.
    assert limit <= len(accepted) <= limit + workers - 1, accepted
    assert {name for name, run in runs.items() if run.backend_ref} == set(accepted)
