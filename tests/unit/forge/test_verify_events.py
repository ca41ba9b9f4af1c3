"""Webhook signature checks and payload reading, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.forge.events import (
    Ignored,
    MalformedPayload,
    PingEvent,
    PullRequestEvent,
    PushEvent,
    parse_gitea,
    parse_github,
    parse_gitlab,
)
from reconciler.forge.verify import hmac_sha256, verify
from tests.infra.webhooks import pull_request_payload, push_payload, sign

BODY = b'{"a":1}'


def test_github_signature() -> None:
    good = {"X-Hub-Signature-256": "sha256=" + hmac_sha256("s3cret", BODY)}
    assert verify("github", "s3cret", BODY, good)
    assert not verify("github", "other", BODY, good)
    assert not verify("github", "s3cret", BODY + b" ", good)
    assert not verify("github", "s3cret", BODY, {"X-Hub-Signature-256": hmac_sha256("s3cret", BODY)})
    assert not verify("github", "s3cret", BODY, {"X-Hub-Signature-256": "sha1=" + hmac_sha256("s3cret", BODY)})
    assert not verify("github", "s3cret", BODY, {})
    assert not verify("github", "", BODY, {"X-Hub-Signature-256": "sha256=" + hmac_sha256("", BODY)})


def test_gitea_and_gitlab_and_generic() -> None:
    assert verify("gitea", "k", BODY, {"X-Gitea-Signature": hmac_sha256("k", BODY)})
    assert not verify("gitea", "k", BODY, {"X-Gitea-Signature": hmac_sha256("k", b"x")})
    assert verify("gitlab", "tok", BODY, {"X-Gitlab-Token": "tok"})
    assert not verify("gitlab", "tok", BODY, {"X-Gitlab-Token": "tok2"})
    assert not verify("gitlab", "tok", BODY, {"X-Gitlab-Token": "ünïcode"})
    assert verify("generic", "g", BODY, {"X-Reconciler-Signature": "sha256=" + hmac_sha256("g", BODY)})


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_sender_deliveries_verify_with_their_scheme(provider: Any) -> None:
    delivery = sign(
        provider, *push_payload(provider, repo="a/b", ref="refs/heads/main", before="1" * 40, after="2" * 40), "sec"
    )
    assert verify(provider, "sec", delivery.body, delivery.headers)
    assert not verify(provider, "sec", delivery.tampered().body, delivery.headers) or provider == "gitlab"


PARSERS = {"github": parse_github, "gitea": parse_gitea, "gitlab": parse_gitlab}


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_push(provider: Any) -> None:
    event, payload = push_payload(
        provider, repo="acme/models", ref="refs/heads/main", before="1" * 40, after="2" * 40, project_id=77
    )
    name = "Push Hook" if provider == "gitlab" else event
    parsed = PARSERS[provider](name, payload)
    assert isinstance(parsed, PushEvent)
    assert parsed.branch == "main" and parsed.after == "2" * 40 and not parsed.deleted
    assert "acme/models" in parsed.projects
    if provider == "gitlab":
        assert "77" in parsed.projects


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened", "closed"])
def test_pull_request_actions(provider: Any, action: Any) -> None:
    event, payload = pull_request_payload(
        provider,
        repo="acme/models",
        number=5,
        action=action,
        head_sha="3" * 40,
        before="4" * 40,
        merged=action == "closed",
    )
    name = "Merge Request Hook" if provider == "gitlab" else event
    parsed = PARSERS[provider](name, payload)
    assert isinstance(parsed, PullRequestEvent)
    assert (parsed.number, parsed.action, parsed.head_sha, parsed.base_ref) == (5, action, "3" * 40, "main")
    assert parsed.merged == (action == "closed")


def test_ignored_and_ping_and_malformed() -> None:
    assert isinstance(parse_github("ping", {"zen": "x"}), PingEvent)
    assert isinstance(parse_github("issues", {}), Ignored)
    _, payload = pull_request_payload("github", repo="a/b", number=1, head_sha="3" * 40)
    payload["action"] = "assigned"
    assert isinstance(parse_github("pull_request", payload), Ignored)
    _, gl = pull_request_payload("gitlab", repo="a/b", number=1, head_sha="3" * 40, action="synchronize")
    assert "oldrev" not in gl["object_attributes"]  # an update without a new head: a title edit
    assert isinstance(parse_gitlab("Merge Request Hook", gl), Ignored)
    with pytest.raises(MalformedPayload):
        parse_github("push", {"ref": "refs/heads/main"})
    with pytest.raises(MalformedPayload):
        parse_github("pull_request", {"action": "opened", "number": "7", "repository": {"full_name": "a/b"}})
    with pytest.raises(MalformedPayload):
        parse_gitlab("Push Hook", [1, 2])


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_a_label_added_is_a_pull_request_event_to_check_again(provider: Any) -> None:
    event, payload = pull_request_payload(provider, repo="acme/models", number=5, action="labeled", head_sha="3" * 40)
    parsed = PARSERS[provider]("Merge Request Hook" if provider == "gitlab" else event, payload)
    assert isinstance(parsed, PullRequestEvent)
    assert (parsed.action, parsed.closing, parsed.head_sha) == ("labeled", False, "3" * 40)


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_fork_or_same_repository_as_each_forge_says_it(provider: Any) -> None:
    def parsed(**kw: Any) -> PullRequestEvent:
        event, payload = pull_request_payload(provider, repo="acme/models", number=5, head_sha="3" * 40, **kw)
        result = PARSERS[provider]("Merge Request Hook" if provider == "gitlab" else event, payload)
        assert isinstance(result, PullRequestEvent)
        return result

    assert parsed().fork is False
    assert parsed(fork="mallory/models").fork is True


def test_a_pull_request_that_cannot_be_placed_counts_as_a_fork() -> None:
    _, github = pull_request_payload("github", repo="acme/models", number=5, head_sha="3" * 40)
    github["pull_request"]["head"]["repo"] = None  # GitHub: the fork was deleted
    assert parse_github("pull_request", github).fork is True  # type: ignore[union-attr]
    # The head's own `fork` flag is not the question: a same-repo PR of a forked repository.
    _, same = pull_request_payload("github", repo="acme/models", number=5, head_sha="3" * 40)
    same["pull_request"]["head"]["repo"]["fork"] = True
    same["pull_request"]["base"]["repo"]["fork"] = True
    assert parse_github("pull_request", same).fork is False  # type: ignore[union-attr]
    _, gitea = pull_request_payload("gitea", repo="acme/models", number=5, head_sha="3" * 40)
    gitea["pull_request"]["head"]["repo_id"] = 8  # ids differ even if the names were made to agree
    assert parse_gitea("pull_request", gitea).fork is True  # type: ignore[union-attr]
    _, gitlab = pull_request_payload("gitlab", repo="acme/models", number=5, head_sha="3" * 40)
    del gitlab["object_attributes"]["source_project_id"]
    assert parse_gitlab("Merge Request Hook", gitlab).fork is True  # type: ignore[union-attr]
