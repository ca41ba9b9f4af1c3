"""Fixtures for the orchestration suite: a migrated tracking DB (SQLite and PostgreSQL), the repo
`r`, and a `Daemon` that applies the orchestrator's `Work` the way the real daemon does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from reconciler.tracking import Store, upgrade
from tests.integration.orchestration.helpers import Daemon

T0 = dt.datetime(2025, 3, 3, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade(db_url)
    s = Store.open(db_url)
    s.ensure_repo("r", "file:///srv/r.git", "main", T0)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def daemon(store: Store) -> Daemon:
    return Daemon(store)
