"""Fixtures for the forge suite: a migrated tracking store on SQLite and PostgreSQL, clients of
the local forge API server for each provider, and a fixed start time for injected clocks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from reconciler.forge.statuses import ForgeClient, GiteaClient, GitHubClient, GitLabClient
from reconciler.tracking import Store, upgrade

if TYPE_CHECKING:
    from tests.infra.forge_server import ForgeServer, Provider

T0 = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
PROJECTS = {"github": "acme/models", "gitlab": "ml-group/models", "gitea": "acme/models"}
PROVIDERS = ("github", "gitlab", "gitea")


def make_client(
    forge: ForgeServer, provider: Provider, *, token: str | None = None, timeout: float = 5.0
) -> ForgeClient:
    secret = token if token is not None else forge.tokens[provider]
    project = PROJECTS[provider]
    if provider == "github":
        return GitHubClient(project, secret, forge.url("github"), timeout=timeout)
    if provider == "gitlab":
        return GitLabClient(project, secret, forge.url("gitlab"), timeout=timeout)
    return GiteaClient(project, secret, forge.url("gitea"), timeout=timeout)


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade(db_url)
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()
