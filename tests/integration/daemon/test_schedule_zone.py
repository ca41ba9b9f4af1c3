"""A daemon started while its repo cannot be fetched still fires schedules in the repo's zone and
namespace: they are stored with the schedule, not read from a repo config not loaded yet."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from reconciler.backends.local import LocalBackend
from reconciler.config import Settings
from reconciler.source import SourceError
from reconciler.tracking import Store, upgrade
from reconciler.wiring import build_daemon
from tests.infra.git_server import GitRepoFactory

CRON = """version: 1.1
kind: operation
name: nightly
schedule: {kind: cron, cron: "0 9 * * *"}
component:
  run: {kind: job, container: {image: busybox, command: [/bin/sh, -c, "true"]}}
"""
# 09:00 in Kathmandu (UTC+05:45) is 03:15 UTC.
REGISTERED = dt.datetime(2025, 5, 6, 0, 0, tzinfo=dt.UTC)
DUE = dt.datetime(2025, 5, 6, 3, 15, 30, tzinfo=dt.UTC)


def test_a_tick_after_a_start_with_the_remote_down_keeps_the_repos_zone_and_namespace(
    db_url: str, tmp_path: Path, git_repo_factory: GitRepoFactory
) -> None:
    upgrade(db_url)
    git = git_repo_factory.create(
        "models",
        {".polyaxon-reconciler.yaml": "timezone: Asia/Kathmandu\nnamespace: ml\n", "ops/nightly.yaml": CRON},
    )
    store = Store.open(db_url)
    try:
        settings = Settings(
            repos=[{"name": "models", "url": git.file_url}],  # type: ignore[list-item]
            data_dir=tmp_path / "data",
            database=db_url,
        )
        backend = LocalBackend.in_data_dir(tmp_path / "data", instance="i", interval=0.05)
        first = build_daemon(settings, store, backend, clock=lambda: REGISTERED, timer=False)
        first.reconcile_repo("models")
        [(key, state)] = store.schedules()
        assert state.next_tick_at == DUE.replace(second=0)
        first.stop(deadline=5)

        down = settings.model_copy(
            update={"repos": [settings.repos[0].model_copy(update={"url": (tmp_path / "gone.git").as_uri()})]}
        )
        backend = LocalBackend.in_data_dir(tmp_path / "data", instance="i", interval=0.05)
        second = build_daemon(down, store, backend, clock=lambda: DUE, timer=False)
        with pytest.raises(SourceError):
            second.reconcile_repo("models")  # the remote is down: no repo config read this run
        second.fire_ticks()
        [run] = [r for r, k in store.list_runs() if k == key]
        assert run.cause_id == "schedule:2025-05-06T03:15:00Z"
        assert run.id is not None
        detail = store.run_detail(run.id)
        assert detail is not None and detail.namespace == "ml"
        second.stop(deadline=5)
    finally:
        store.close()
