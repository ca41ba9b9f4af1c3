"""Pytest fixtures for the real git and forge test servers (registered from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.git_server import GitHttpServer, GitRepoFactory, started_git_http_server


@pytest.fixture
def git_repo_factory(tmp_path: Path) -> GitRepoFactory:
    """Working repositories with bare ``origin`` remotes under this test's ``tmp_path``."""
    return GitRepoFactory(tmp_path / "git")


@pytest.fixture(scope="session")
def git_http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    """One smart-HTTP git server for the session; ``publish()`` a bare repo to serve it."""
    yield from started_git_http_server(tmp_path_factory.mktemp("git-http-home"))
