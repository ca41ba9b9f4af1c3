"""Fixtures for the orchestration suite: the production daemon (`tests.infra.daemon`) over a real
git repo `r` and a migrated tracking DB (SQLite and PostgreSQL), with a scripted backend whose runs
have the statuses each test records, and a clock that starts at `T0`."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.daemon import Clock, DaemonHarness, daemon_harness
from tests.infra.git_server import GitRepoFactory
from tests.infra.scripted_backend import ScriptedBackend

T0 = dt.datetime(2025, 3, 3, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def h(db_url: str, tmp_path: Path, git_repo_factory: GitRepoFactory) -> Iterator[DaemonHarness]:
    with daemon_harness(tmp_path, db_url, git_repo_factory, start=T0) as h:
        yield h


def race_two_daemons(h: DaemonHarness, moments: list[dt.datetime], timeout: float) -> list[str]:
    """Two daemons on their own stores and backends fire ticks at each of `moments` at once;
    the names of every run either submitted (a tick fired twice shows as a repeated name)."""
    backends = [ScriptedBackend() for _ in range(2)]
    clocks = [Clock(T0) for _ in range(2)]
    daemons = [h.build(store=h.open_store(), backend=b, clock=c) for b, c in zip(backends, clocks, strict=True)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            for moment in moments:
                clocks[i].set(moment)
                daemons[i].fire_ticks()
        except BaseException as e:  # reported below: a thread's exception would be lost
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads) and errors == []
    return [r.name for b in backends for r in b.submits]
