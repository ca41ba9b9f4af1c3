"""Fixtures for the tracking suite: a migrated store on each database, a fixed clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from reconciler.tracking import Store, upgrade

T0 = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture
def now() -> dt.datetime:
    return T0


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade(db_url)
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def seeded(store: Store, now: dt.datetime) -> Store:
    """One repo with two operations, `r:a.yaml#a` and `r:b.yaml#b`."""
    store.ensure_repo("r", "file:///srv/r.git", "main", now)
    store.upsert_operation("r:a.yaml#a", "r", "run", now, spec_hash="h-a", commit_sha="c1")
    store.upsert_operation("r:b.yaml#b", "r", "run", now, spec_hash="h-b", commit_sha="c1")
    return store
