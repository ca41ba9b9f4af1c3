"""GitSource over git's smart HTTP (git http-backend): tokens, refusals, retries, force-push."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.source import GitSource, PermanentSourceError, Verdict
from reconciler.source.backoff import Backoff
from tests.infra.git_server import GitHttpServer, GitRepoFactory

OP = "kind: operation\nname: train\ncomponent:\n  run: {kind: job, container: {image: python}}\n"


def source(url: str, tmp_path: Path, sleeps: list[float], **kwargs: object) -> GitSource:
    return GitSource(
        "demo",
        url,
        "main",
        tmp_path / "cache",
        sleep=sleeps.append,
        backoff=Backoff(attempts=4, initial=1, cap=4),
        **kwargs,  # type: ignore[arg-type]
    )


def test_fetch_with_a_token_from_a_file_and_from_the_environment(
    git_repo_factory: GitRepoFactory, git_http_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo_factory.create("tokened", {"ops/train.yaml": OP})
    served = git_http_server.publish(repo.remote, token="s3cret-token")
    (tmp_path / "token").write_text("s3cret-token\n")
    (tmp_path / "token").chmod(0o600)  # secret files others can read are refused
    sleeps: list[float] = []
    fetched = source(served.url, tmp_path, sleeps, token_file=tmp_path / "token").fetch()
    assert fetched.sha == repo.head()
    monkeypatch.setenv("GIT_TOKEN_FOR_TEST", "s3cret-token")
    again = source(served.url, tmp_path / "env", sleeps, token_env="GIT_TOKEN_FOR_TEST").fetch()
    assert again.sha == repo.head()
    assert sleeps == []
    assert not any("s3cret-token" in p.read_text(errors="ignore") for p in (tmp_path / "cache").rglob("config"))


def test_a_wrong_token_is_a_permanent_error_that_names_no_secret(
    git_repo_factory: GitRepoFactory, git_http_server: GitHttpServer, tmp_path: Path
) -> None:
    repo = git_repo_factory.create("denied", {"ops/train.yaml": OP})
    served = git_http_server.publish(repo.remote, token="right-token")
    sleeps: list[float] = []
    with pytest.raises(PermanentSourceError) as info:
        source(served.url, tmp_path, sleeps, token="wrong-token-value").fetch()
    assert "wrong-token-value" not in str(info.value)
    assert sleeps == [], "an authentication failure is not retried"


def test_server_errors_are_retried_with_backoff(
    git_repo_factory: GitRepoFactory, git_http_server: GitHttpServer, tmp_path: Path
) -> None:
    repo = git_repo_factory.create("flaky", {"ops/train.yaml": OP})
    served = git_http_server.publish(repo.remote)
    served.fail_next(2, status=503)
    sleeps: list[float] = []
    fetched = source(served.url, tmp_path, sleeps).fetch()
    assert fetched.sha == repo.head()
    assert sleeps == [1, 2]


def test_force_push_over_http_is_ignored_by_default(
    git_repo_factory: GitRepoFactory, git_http_server: GitHttpServer, tmp_path: Path
) -> None:
    repo = git_repo_factory.create("rewritten", {"ops/train.yaml": OP})
    served = git_http_server.publish(repo.remote)
    sleeps: list[float] = []
    src = source(served.url, tmp_path, sleeps)
    first = src.fetch()
    repo.rewrite_last_commit("rewritten history")
    rewritten = src.fetch()
    assert rewritten.sha != first.sha
    advance = src.advance(first.sha, rewritten)
    assert advance.verdict is Verdict.IGNORE and advance.current == first.sha
