"""Each provider against the local forge API server, which checks every request against the
forge's published API description: statuses, comments, and how failures are classified."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.forge.errors import PermanentForgeError, RateLimited, TransientForgeError
from reconciler.forge.statuses import CommitStatus
from reconciler.statuses import CommitState

from .conftest import PROJECTS, make_client

SHA = "a" * 40


def test_post_and_read_back_statuses(forge_server: Any, provider: Any) -> None:
    client = make_client(forge_server, provider)
    try:
        client.post_status(CommitStatus(SHA, "polyaxon/validate", CommitState.PENDING, "checking", "http://d/x"))
        client.post_status(CommitStatus(SHA, "polyaxon/validate", CommitState.FAILURE, "ops/a.yaml:3: bad"))
        client.post_status(CommitStatus(SHA, "polyaxon/train", CommitState.ERROR, "Run stopped: Superseded"))
        found = client.list_statuses(SHA)
    finally:
        client.close()
    assert [(s.context, s.state) for s in found] == [
        ("polyaxon/train", CommitState.ERROR),
        ("polyaxon/validate", CommitState.FAILURE),
        ("polyaxon/validate", CommitState.PENDING),
    ]
    stored = forge_server.statuses(provider, PROJECTS[provider], SHA)
    key = "status" if provider in ("gitlab", "gitea") else "state"
    expected = {"github": "error", "gitlab": "canceled", "gitea": "error"}[provider]
    assert stored[-1][key] == expected
    assert stored[0]["target_url"] == "http://d/x"


def test_descriptions_are_clipped_to_the_forge_limit(forge_server: Any, provider: Any) -> None:
    client = make_client(forge_server, provider)
    try:
        client.post_status(CommitStatus(SHA, "polyaxon/x", CommitState.SUCCESS, "é" * 1000))
    finally:
        client.close()
    body = forge_server.requests(provider, "POST")[-1].json
    assert len(body["description"]) == client.description_limit
    assert body["description"].endswith("…")


def test_gitlab_same_state_twice_counts_as_posted(forge_server: Any) -> None:
    client = make_client(forge_server, "gitlab")
    try:
        status = CommitStatus(SHA, "polyaxon/validate", CommitState.SUCCESS, "ok")
        client.post_status(status)
        client.post_status(status)  # GitLab answers 400 "Cannot transition status": already so
    finally:
        client.close()
    assert [r.status for r in forge_server.requests("gitlab", "POST")] == [201, 400]


def test_comments_create_list_update(forge_server: Any, provider: Any) -> None:
    client = make_client(forge_server, provider)
    try:
        made = client.create_comment(7, "first")
        client.create_comment(7, "someone else")
        client.update_comment(7, made.id, "edited")
        listed = client.list_comments(7)
    finally:
        client.close()
    assert (listed[0].id, listed[0].body) == (made.id, "edited")
    assert [c["body"] for c in forge_server.comments(provider, PROJECTS[provider], 7)] == ["edited", "someone else"]


def test_list_follows_pages(forge_server: Any, provider: Any) -> None:
    client = make_client(forge_server, provider)
    try:
        for i in range(120):
            client.post_status(CommitStatus(SHA, f"polyaxon/op{i}", CommitState.PENDING))
        found = client.list_statuses(SHA)
    finally:
        client.close()
    assert len(found) == 120
    assert len(forge_server.requests(provider, "GET")) >= 2


def test_open_pull_requests_are_listed_across_pages_with_forks_marked(forge_server: Any, provider: Any) -> None:
    project = PROJECTS[provider]
    for number in range(1, 131):
        forge_server.add_pull_request(provider, project, number, head_sha=f"{number:040x}", head_ref=f"b{number}")
    forge_server.add_pull_request(provider, project, 131, head_sha="c" * 40, state="closed")
    forge_server.add_pull_request(provider, project, 132, head_sha="d" * 40, fork=True)
    # The local server checks each page of 100 full pull requests against the forge's schema:
    # seconds on a loaded machine, so more room than the default.
    client = make_client(forge_server, provider, timeout=60.0)
    try:
        found = {event.number: event for event in client.open_pull_requests()}
    finally:
        client.close()
    assert sorted(found) == [*range(1, 131), 132]
    assert len(forge_server.requests(provider, "GET", r"/(pulls|merge_requests)$")) >= 2
    assert (found[7].head_sha, found[7].head_ref, found[7].base_ref) == (f"{7:040x}", "b7", "main")
    assert found[7].action == "synchronize" and not found[7].closing
    assert [n for n, e in found.items() if e.fork] == [132]


def test_server_errors_are_transient(forge_server: Any, provider: Any) -> None:
    forge_server.fail_next(1, status=502, provider=provider)
    client = make_client(forge_server, provider)
    try:
        with pytest.raises(TransientForgeError) as caught:
            client.post_status(CommitStatus(SHA, "polyaxon/x", CommitState.PENDING))
    finally:
        client.close()
    assert caught.value.status == 502 and caught.value.sent
    assert not isinstance(caught.value, RateLimited)


def test_rate_limit_headers_give_the_wait(forge_server: Any, provider: Any) -> None:
    forge_server.rate_limit_next(1, reset_after=90, provider=provider)
    forge_server.throttle_next(1, retry_after=7, provider=provider)
    client = make_client(forge_server, provider)
    try:
        with pytest.raises(RateLimited) as first:
            client.post_status(CommitStatus(SHA, "polyaxon/x", CommitState.PENDING))
        with pytest.raises(RateLimited) as second:
            client.post_status(CommitStatus(SHA, "polyaxon/x", CommitState.PENDING))
    finally:
        client.close()
    # Measured against the forge's Date header (whole seconds), not our clock.
    assert 88 <= first.value.retry_after_s <= 91 and first.value.status == 403
    assert second.value.retry_after_s == 7 and second.value.status == 429
    assert not first.value.sent


def test_bad_token_is_permanent_and_never_logged(forge_server: Any, provider: Any) -> None:
    from reconciler.logs import register_secret

    register_secret("wrong-token-123")
    client = make_client(forge_server, provider, token="wrong-token-123")
    try:
        with pytest.raises(PermanentForgeError) as caught:
            client.post_status(CommitStatus(SHA, "polyaxon/x", CommitState.PENDING))
    finally:
        client.close()
    assert caught.value.status == 401
    assert "wrong-token-123" not in str(caught.value)


def test_hang_is_a_timeout_that_may_have_landed(forge_server: Any, provider: Any) -> None:
    forge_server.hang_next(1, seconds=5, provider=provider)
    client = make_client(forge_server, provider, timeout=0.5)
    try:
        with pytest.raises(TransientForgeError) as caught:
            client.post_status(CommitStatus(SHA, "polyaxon/x", CommitState.PENDING))
    finally:
        client.close()
    assert "timed out" in str(caught.value) and caught.value.sent


def test_connection_refused_is_transient_and_not_sent() -> None:
    import socket

    from reconciler.forge.statuses import GitHubClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = GitHubClient("acme/models", "t0ken", f"http://127.0.0.1:{port}", timeout=2)
    try:
        with pytest.raises(TransientForgeError) as caught:
            client.post_status(CommitStatus(SHA, "polyaxon/x", CommitState.PENDING))
    finally:
        client.close()
    assert not caught.value.sent
