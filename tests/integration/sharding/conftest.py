"""Fixtures for the sharding suite: a migrated tracking database on the test PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.tracking import Store, upgrade
from tests.infra.postgres import PostgresServer


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create_database("shard")
    url = postgres_server.url(name)
    upgrade(url)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = Store.open(pg_url)
    try:
        yield store
    finally:
        store.close()
