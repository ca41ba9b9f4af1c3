"""Fixtures for the orchestration suite: the production daemon (`tests.infra.daemon`) over a real
git repo `r` and a migrated tracking DB (SQLite and PostgreSQL), with a scripted backend whose runs
have the statuses each test records, and a clock that starts at `T0`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.daemon import DaemonHarness, daemon_harness
from tests.infra.git_server import GitRepoFactory

T0 = dt.datetime(2025, 3, 3, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def h(db_url: str, tmp_path: Path, git_repo_factory: GitRepoFactory) -> Iterator[DaemonHarness]:
    with daemon_harness(tmp_path, db_url, git_repo_factory, start=T0) as h:
        yield h
