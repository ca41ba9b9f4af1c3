"""The git test infrastructure does what the source adapter's tests rely on."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.infra.git_server import GitError, GitHttpServer, GitRepo, GitRepoFactory, PublishedRepo

POLYAXONFILE = "version: 1.1\nkind: operation\nname: train\n"


@pytest.fixture
def origin(git_repo_factory: GitRepoFactory) -> GitRepo:
    return git_repo_factory.create("models", {"ops/train.yaml": POLYAXONFILE})


@pytest.fixture
def served(git_http_server: GitHttpServer, origin: GitRepo) -> Iterator[PublishedRepo]:
    repo = git_http_server.publish(origin.remote)
    yield repo
    git_http_server.unpublish(repo)


@pytest.fixture
def served_with_token(git_http_server: GitHttpServer, origin: GitRepo) -> Iterator[PublishedRepo]:
    repo = git_http_server.publish(origin.remote, token="s3cr3t-token")
    yield repo
    git_http_server.unpublish(repo)


def test_repo_helper_commits_branches_and_edits(git_repo_factory: GitRepoFactory) -> None:
    repo = git_repo_factory.create("edits", {"a.yaml": "a: 1\n", "dir/b.yaml": "b: 1\n"})
    first = repo.head()
    assert repo.current_branch() == "main"
    assert repo.remote_refs()["refs/heads/main"] == first

    repo.rename("a.yaml", "moved/a.yaml")
    repo.delete("dir/b.yaml")
    second = repo.commit("move a, drop b")
    assert repo.git("show", "--name-status", "--no-renames", "--format=", second).splitlines() == [
        "D\ta.yaml",
        "D\tdir/b.yaml",
        "A\tmoved/a.yaml",
    ]
    assert repo.git("ls-tree", "-r", "--name-only", second).splitlines() == ["moved/a.yaml"]

    repo.checkout("feature", create=True)
    feature = repo.commit("feature work", {"moved/a.yaml": "a: 2\n"})
    repo.push()
    refs = repo.remote_refs()
    assert refs["refs/heads/feature"] == feature
    assert refs["refs/heads/main"] == first  # main was never pushed after the second commit
    # Commit dates follow the fake clock: strictly increasing, independent of the wall clock.
    dates = [int(repo.git("log", "-1", "--format=%ct", sha)) for sha in (first, second, feature)]
    assert dates == sorted(dates) and len(set(dates)) == 3


def test_clone_and_fetch_over_file_url(git_repo_factory: GitRepoFactory, origin: GitRepo) -> None:
    clone = git_repo_factory.clone(origin.file_url)
    assert (clone / "ops/train.yaml").read_text() == POLYAXONFILE

    new = origin.commit("second", {"ops/eval.yaml": POLYAXONFILE.replace("train", "eval")})
    origin.push()
    git_repo_factory.git(clone, "fetch", "-q", "origin")
    assert git_repo_factory.git(clone, "rev-parse", "origin/main") == new


def test_clone_and_fetch_over_http_without_token(
    git_repo_factory: GitRepoFactory, origin: GitRepo, served: PublishedRepo
) -> None:
    clone = git_repo_factory.clone(served.url)
    assert git_repo_factory.git(clone, "rev-parse", "HEAD") == origin.head()
    assert served.count(service="git-upload-pack", status=200) >= 2  # advertisement + pack

    new = origin.commit("second", {"ops/train.yaml": POLYAXONFILE + "tags: [x]\n"})
    origin.push()
    git_repo_factory.git(clone, "fetch", "-q", "origin")
    assert git_repo_factory.git(clone, "rev-parse", "origin/main") == new


def test_http_with_token_clones_and_bad_or_missing_token_gets_401(
    git_repo_factory: GitRepoFactory, origin: GitRepo, served_with_token: PublishedRepo
) -> None:
    clone = git_repo_factory.clone(served_with_token.url_with_token())
    assert git_repo_factory.git(clone, "rev-parse", "HEAD") == origin.head()
    assert served_with_token.count(status=200) >= 2

    served_with_token.clear_requests()
    bad = git_repo_factory.try_git(None, "ls-remote", served_with_token.url_with_token("wrong"))
    assert bad.returncode != 0
    assert "401" in bad.stderr or "Authentication failed" in bad.stderr
    missing = git_repo_factory.try_git(None, "ls-remote", served_with_token.url)
    assert missing.returncode != 0
    records = served_with_token.requests()
    assert records and all(r.status == 401 for r in records)


def test_bearer_token_in_extra_header_is_accepted(
    git_repo_factory: GitRepoFactory, origin: GitRepo, served_with_token: PublishedRepo
) -> None:
    out = git_repo_factory.git(
        None,
        "-c",
        "http.extraHeader=Authorization: Bearer s3cr3t-token",
        "ls-remote",
        served_with_token.url,
        "refs/heads/main",
    )
    assert out.split()[0] == origin.head()


def test_push_over_http_reaches_the_bare_remote(
    git_repo_factory: GitRepoFactory, origin: GitRepo, served_with_token: PublishedRepo
) -> None:
    clone = git_repo_factory.clone(served_with_token.url_with_token(), "pusher")
    (clone / "ops/new.yaml").write_text(POLYAXONFILE)
    git_repo_factory.git(clone, "add", "-A")
    git_repo_factory.git(clone, "commit", "-q", "-m", "pushed over http")
    pushed = git_repo_factory.git(clone, "rev-parse", "HEAD")
    git_repo_factory.git(clone, "push", "-q", "origin", "HEAD:refs/heads/main")
    assert origin.remote_refs()["refs/heads/main"] == pushed
    assert served_with_token.count(service="git-receive-pack", status=200) >= 2


def test_force_push_is_visible_to_a_fetcher(
    git_repo_factory: GitRepoFactory, origin: GitRepo, served: PublishedRepo
) -> None:
    before = origin.commit("to be rewritten", {"ops/train.yaml": POLYAXONFILE + "# v2\n"})
    origin.push()
    clone = git_repo_factory.clone(served.url)
    assert git_repo_factory.git(clone, "rev-parse", "origin/main") == before

    after = origin.rewrite_last_commit("rewritten", {"ops/train.yaml": POLYAXONFILE + "# v2b\n"})
    assert after != before
    git_repo_factory.git(clone, "fetch", "-q", "origin")
    assert git_repo_factory.git(clone, "rev-parse", "origin/main") == after
    # The old head is no ancestor of the new one: a fetcher can tell it was a rewrite.
    ancestor = git_repo_factory.try_git(clone, "merge-base", "--is-ancestor", before, after)
    assert ancestor.returncode == 1


@pytest.mark.parametrize("style", ["github", "gitlab"])
def test_pull_request_refs_are_fetchable(
    git_repo_factory: GitRepoFactory, origin: GitRepo, served: PublishedRepo, style: str
) -> None:
    origin.checkout("feature", create=True)
    head = origin.commit("pr work", {"ops/pr.yaml": POLYAXONFILE})
    ref = origin.open_pull_request(7, style=style)  # type: ignore[arg-type]
    assert ref == ("refs/pull/7/head" if style == "github" else "refs/merge-requests/7/head")

    clone = git_repo_factory.clone(served.url)
    git_repo_factory.git(clone, "fetch", "-q", "origin", f"+{ref}:refs/remotes/pr/7")
    assert git_repo_factory.git(clone, "rev-parse", "refs/remotes/pr/7") == head

    # A new push to the PR branch moves the ref.
    moved = origin.commit("more pr work", {"ops/pr.yaml": POLYAXONFILE + "# more\n"})
    origin.open_pull_request(7, style=style)  # type: ignore[arg-type]
    git_repo_factory.git(clone, "fetch", "-q", "origin", f"+{ref}:refs/remotes/pr/7")
    assert git_repo_factory.git(clone, "rev-parse", "refs/remotes/pr/7") == moved


def test_injected_503_fails_then_the_retry_succeeds(
    git_repo_factory: GitRepoFactory, origin: GitRepo, served: PublishedRepo
) -> None:
    served.fail_next(2, status=503)
    for _ in range(2):
        failed = git_repo_factory.try_git(None, "ls-remote", served.url)
        assert failed.returncode != 0
        assert "503" in failed.stderr
    ok = git_repo_factory.git(None, "ls-remote", served.url, "refs/heads/main")
    assert ok.split()[0] == origin.head()
    statuses = [(r.status, r.injected) for r in served.requests()]
    assert statuses[:2] == [(503, "status"), (503, "status")]
    assert statuses[2][0] == 200


def test_injected_hang_trips_the_client_timeout(
    git_repo_factory: GitRepoFactory, origin: GitRepo, served: PublishedRepo
) -> None:
    served.hang_next(1, seconds=30)
    started = time.monotonic()
    # git gives up on a transfer slower than 1 byte/s for 1 s: the client-side timeout.
    hung = git_repo_factory.try_git(
        None, "-c", "http.lowSpeedLimit=1", "-c", "http.lowSpeedTime=1", "ls-remote", served.url, timeout=20
    )
    elapsed = time.monotonic() - started
    assert hung.returncode != 0
    assert elapsed < 15, f"client should have given up long before the 30 s hang ended ({elapsed:.1f}s)"
    assert served.requests()[0].injected == "hang"
    # The hang was for one request only.
    assert git_repo_factory.git(None, "ls-remote", served.url, "refs/heads/main").split()[0] == origin.head()


def test_unknown_repository_is_404(git_repo_factory: GitRepoFactory, git_http_server: GitHttpServer) -> None:
    result = git_repo_factory.try_git(None, "ls-remote", f"{git_http_server.base_url}/nope.git")
    assert result.returncode != 0
    assert "not found" in result.stderr.lower() or "404" in result.stderr


def test_git_error_carries_stderr(git_repo_factory: GitRepoFactory) -> None:
    with pytest.raises(GitError) as info:
        git_repo_factory.git(None, "rev-parse", "--verify", "no-such-ref-anywhere")
    assert info.value.returncode != 0


def test_large_push_over_http_uses_chunked_encoding(
    git_repo_factory: GitRepoFactory, origin: GitRepo, served: PublishedRepo
) -> None:
    clone = git_repo_factory.clone(served.url, "chunky")
    (clone / "blob.bin").write_bytes(os.urandom(256 * 1024))  # incompressible, > postBuffer
    git_repo_factory.git(clone, "add", "-A")
    git_repo_factory.git(clone, "commit", "-q", "-m", "big")
    pushed = git_repo_factory.git(clone, "rev-parse", "HEAD")
    git_repo_factory.git(clone, "-c", "http.postBuffer=4096", "push", "-q", "origin", "HEAD:refs/heads/main")
    assert origin.remote_refs()["refs/heads/main"] == pushed


def test_parallel_clients_are_all_served(
    git_repo_factory: GitRepoFactory, origin: GitRepo, served: PublishedRepo
) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: git_repo_factory.try_git(None, "ls-remote", served.url), range(8)))
    assert [r.returncode for r in results] == [0] * 8
    assert all(origin.head() in r.stdout for r in results)
    # one ref advertisement per client (protocol v2 then asks for the refs in a second request)
    assert sum(1 for r in served.requests() if r.path == "info/refs" and r.status == 200) == 8
