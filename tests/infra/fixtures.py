"""Pytest fixtures for the real git and forge test servers (registered from tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.infra.git_server import GitHttpServer, GitRepoFactory, started_git_http_server
from tests.infra.webhooks import WebhookReceiver, WebhookSender, started_webhook_receiver

if TYPE_CHECKING:
    # Imported inside the fixtures: openapi-core takes ~2 s to import, which unit-only runs skip.
    from tests.infra.forge_server import ForgeServer
    from tests.infra.gitea_server import GiteaServer


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
    from tests.infra.forge_server import ForgeServer

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
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A local endpoint recording the webhooks POSTed to it (headers, raw body)."""
    with started_webhook_receiver() as server:
        yield server


@pytest.fixture
def webhook_sender() -> WebhookSender:
    """Signs deliveries with the secret ``webhook-secret`` and POSTs them to a URL."""
    return WebhookSender(secret="webhook-secret")


@pytest.fixture(scope="session")
def gitea_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaServer]:
    """A real Gitea (admin ``bot``, token in ``.token``) built by ``make gitea``, for the session."""
    from tests.infra.gitea_build import is_built as gitea_is_built
    from tests.infra.gitea_server import started_gitea

    if not gitea_is_built():
        message = "real Gitea not built: run `make gitea` (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    yield from started_gitea(tmp_path_factory.mktemp("gitea"))


@pytest.fixture(autouse=True)
def _umask_kept() -> Iterator[None]:
    """A test that leaves the process umask changed (an in-process command that set it and did not
    put it back) makes later tests' directories private to this user, failing them far away."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    after = os.umask(before)
    assert after == before, f"the test left the umask {after:04o} (was {before:04o})"
