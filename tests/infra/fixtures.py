"""Pytest fixtures for the real git and forge test servers (registered from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.forge_server import ForgeServer
from tests.infra.git_server import GitHttpServer, GitRepoFactory, started_git_http_server
from tests.infra.webhooks import WebhookSender


@pytest.fixture
def git_repo_factory(tmp_path: Path) -> GitRepoFactory:
    """Working repositories with bare ``origin`` remotes under this test's ``tmp_path``."""
    return GitRepoFactory(tmp_path / "git")


@pytest.fixture(scope="session")
def git_http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    """One smart-HTTP git server for the session; ``publish()`` a bare repo to serve it."""
    yield from started_git_http_server(tmp_path_factory.mktemp("git-http-home"))


@pytest.fixture(scope="session")
def forge_server_session() -> Iterator[ForgeServer]:
    server = ForgeServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def forge_server(forge_server_session: ForgeServer) -> Iterator[ForgeServer]:
    """The fake GitHub/GitLab/Gitea API, emptied for this test.

    At teardown the test fails if any request broke the provider's API description, unless the
    test called ``forge_server.expect_violations()`` because it sends invalid requests on purpose.
    """
    forge_server_session.reset()
    yield forge_server_session
    violations = forge_server_session.violations
    expected = forge_server_session.violations_expected
    forge_server_session.reset()
    if violations and not expected:
        pytest.fail("forge API violations:\n" + "\n".join(str(v) for v in violations), pytrace=False)


@pytest.fixture
def webhook_sender() -> WebhookSender:
    """Signs deliveries with the secret ``webhook-secret`` and POSTs them to a URL."""
    return WebhookSender(secret="webhook-secret")
