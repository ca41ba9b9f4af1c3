"""The fake forge validates like the real APIs, keeps state, records, and injects failures."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from typing import Any

import pytest

from tests.infra.forge_server import ForgeServer, Provider
from tests.infra.webhooks import (
    ZERO_SHA,
    WebhookReceiver,
    WebhookSender,
    gitea_signature,
    github_signature,
)

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
PROVIDERS: list[Provider] = ["github", "gitlab", "gitea"]


def call(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    form: bool = False,
) -> tuple[int, dict[str, str], Any]:
    data = None
    all_headers = dict(headers or {})
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), json.loads(error.read() or b"null")


def status_url(forge: ForgeServer, provider: Provider, repo: str = "acme/models", sha: str = SHA) -> str:
    if provider == "gitlab":
        return f"{forge.url('gitlab')}/projects/{urllib.parse.quote(repo, safe='')}/statuses/{sha}"
    return f"{forge.url(provider)}/repos/{repo}/statuses/{sha}"


def list_statuses_url(forge: ForgeServer, provider: Provider, repo: str = "acme/models") -> str:
    if provider == "gitlab":
        project = urllib.parse.quote(repo, safe="")
        return f"{forge.url('gitlab')}/projects/{project}/repository/commits/{SHA}/statuses"
    return f"{forge.url(provider)}/repos/{repo}/commits/{SHA}/statuses"


def comments_url(forge: ForgeServer, provider: Provider, number: int, repo: str = "acme/models") -> str:
    if provider == "gitlab":
        project = urllib.parse.quote(repo, safe="")
        return f"{forge.url('gitlab')}/projects/{project}/merge_requests/{number}/notes"
    return f"{forge.url(provider)}/repos/{repo}/issues/{number}/comments"


def comment_url(forge: ForgeServer, provider: Provider, number: int, comment_id: int) -> str:
    if provider == "gitlab":
        return f"{comments_url(forge, provider, number)}/{comment_id}"
    return f"{forge.url(provider)}/repos/acme/models/issues/comments/{comment_id}"


def state_field(provider: Provider) -> str:
    return "state" if provider == "github" else "status"


# -- commit statuses ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_valid_status_is_accepted_stored_and_listed(forge_server: ForgeServer, provider: Provider) -> None:
    success = "failed" if provider == "gitlab" else "failure"
    body = {"state": success, "context": "polyaxon/validate", "description": "ops/train.yaml:3: bad"}
    if provider == "gitlab":
        body = {
            "state": success,
            "name": "polyaxon/validate",
            "ref": "main",
            "description": "ops/train.yaml:3: bad",
        }
    status, _, created = call("POST", status_url(forge_server, provider), body, forge_server.auth_headers(provider))
    assert status == 201, created
    assert created[state_field(provider)] == success

    stored = forge_server.statuses(provider, "acme/models", SHA)
    assert [s[state_field(provider)] for s in stored] == [success]

    status, _, listed = call(
        "GET", list_statuses_url(forge_server, provider), None, forge_server.auth_headers(provider)
    )
    assert status == 200
    assert [s["id"] for s in listed] == [created["id"]]
    forge_server.assert_no_violations()
    (post,) = forge_server.requests(provider, "POST")
    assert post.json == body
    assert post.status == 201


@pytest.mark.parametrize("provider", PROVIDERS)
def test_invalid_state_is_rejected_by_the_api_description(forge_server: ForgeServer, provider: Provider) -> None:
    forge_server.expect_violations()
    status, _, reply = call(
        "POST", status_url(forge_server, provider), {"state": "done"}, forge_server.auth_headers(provider)
    )
    assert status == 422
    (violation,) = forge_server.violations
    assert violation.kind == "schema"
    assert violation.provider == provider
    assert any("'done' is not one of" in line for line in violation.errors), violation.errors
    assert forge_server.statuses(provider, "acme/models", SHA) == []
    assert reply["errors"]


def test_missing_required_field_and_wrong_query_value_are_violations(forge_server: ForgeServer) -> None:
    forge_server.expect_violations()
    headers = forge_server.auth_headers("github")
    assert call("POST", comments_url(forge_server, "github", 1), {"text": "x"}, headers)[0] == 422
    # GitHub says "open", GitLab says "opened": the classic cross-provider slip.
    assert call("GET", f"{forge_server.url('github')}/repos/acme/models/pulls?state=opened", None, headers)[0] == 422
    kinds = [(v.kind, v.method) for v in forge_server.violations]
    assert kinds == [("schema", "POST"), ("schema", "GET")]
    assert any("'body' is a required property" in e for e in forge_server.violations[0].errors)


def test_endpoint_not_in_the_description_is_a_violation(forge_server: ForgeServer) -> None:
    forge_server.expect_violations()
    headers = forge_server.auth_headers("github")
    status, _, _ = call(
        "POST", f"{forge_server.url('github')}/repos/acme/models/statuses", {"state": "success"}, headers
    )
    assert status == 404
    assert [v.kind for v in forge_server.violations] == ["unknown_endpoint"]


def test_gitlab_accepts_form_encoded_statuses_and_numeric_project_ids(forge_server: ForgeServer) -> None:
    project_id = forge_server.gitlab_project_id("acme/models")
    url = f"{forge_server.url('gitlab')}/projects/{project_id}/statuses/{SHA}"
    headers = forge_server.auth_headers("gitlab")
    status, _, created = call("POST", url, {"state": "running", "name": "polyaxon/train"}, headers, form=True)
    assert status == 201, created
    # Same project by path, same job updated in place.
    status, _, updated = call(
        "POST", status_url(forge_server, "gitlab"), {"state": "success", "name": "polyaxon/train"}, headers
    )
    assert status == 201
    assert updated["id"] == created["id"]
    assert [s["status"] for s in forge_server.statuses("gitlab", str(project_id), SHA)] == [
        "running",
        "success",
    ]


def test_gitlab_refuses_a_repeated_state_as_gitlab_does(forge_server: ForgeServer) -> None:
    headers = forge_server.auth_headers("gitlab")
    body = {"state": "success", "name": "polyaxon/validate"}
    assert call("POST", status_url(forge_server, "gitlab"), body, headers)[0] == 201
    status, _, reply = call("POST", status_url(forge_server, "gitlab"), body, headers)
    assert status == 400
    assert "Cannot transition status" in reply["message"]


def test_github_combined_status_takes_the_latest_per_context(forge_server: ForgeServer) -> None:
    headers = forge_server.auth_headers("github")
    for state, context in [("pending", "a"), ("success", "a"), ("failure", "b")]:
        assert call("POST", status_url(forge_server, "github"), {"state": state, "context": context}, headers)[0] == 201
    status, _, combined = call(
        "GET", f"{forge_server.url('github')}/repos/acme/models/commits/{SHA}/status", None, headers
    )
    assert status == 200
    assert combined["state"] == "failure"
    assert combined["total_count"] == 2
    assert {s["context"]: s["state"] for s in combined["statuses"]} == {"a": "success", "b": "failure"}


# -- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_missing_or_wrong_token_is_401_and_changes_nothing(forge_server: ForgeServer, provider: Provider) -> None:
    body = {"state": "success", "context": "c"}
    assert call("POST", status_url(forge_server, provider), body, {})[0] == 401
    assert call("POST", status_url(forge_server, provider), body, forge_server.auth_headers(provider, "nope"))[0] == 401
    assert forge_server.statuses(provider, "acme/models", SHA) == []
    assert [r.status for r in forge_server.requests(provider)] == [401, 401]


@pytest.mark.parametrize(
    ("provider", "headers", "expected"),
    [
        ("github", {"Authorization": "token ghp_test-token"}, 201),
        ("github", {"Authorization": "Bearer ghp_test-token"}, 201),
        ("github", {"PRIVATE-TOKEN": "ghp_test-token"}, 401),
        ("gitlab", {"PRIVATE-TOKEN": "glpat-test-token"}, 201),
        ("gitlab", {"Authorization": "Bearer glpat-test-token"}, 201),
        ("gitlab", {"Authorization": "token glpat-test-token"}, 401),
        ("gitea", {"Authorization": "token gitea-test-token"}, 201),
        ("gitea", {"Authorization": "Bearer gitea-test-token"}, 201),
        ("gitea", {"Authorization": "Basic Z2l0ZWEtdGVzdC10b2tlbg=="}, 401),
    ],
)
def test_each_provider_accepts_only_its_own_auth_headers(
    forge_server: ForgeServer, provider: Provider, headers: dict[str, str], expected: int
) -> None:
    assert call("POST", status_url(forge_server, provider), {"state": "success"}, headers)[0] == expected


# -- comments and pull requests -----------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_comments_create_update_list(forge_server: ForgeServer, provider: Provider) -> None:
    headers = forge_server.auth_headers(provider)
    status, _, created = call("POST", comments_url(forge_server, provider, 5), {"body": "plan: 1 new run"}, headers)
    assert status == 201
    verb = "PUT" if provider == "gitlab" else "PATCH"
    status, _, updated = call(verb, comment_url(forge_server, provider, 5, created["id"]), {"body": "plan v2"}, headers)
    assert status == 200
    assert updated["id"] == created["id"] and updated["body"] == "plan v2"
    status, _, listed = call("GET", comments_url(forge_server, provider, 5), None, headers)
    assert [(c["id"], c["body"]) for c in listed] == [(created["id"], "plan v2")]
    assert forge_server.comments(provider, "acme/models", 5)[0]["body"] == "plan v2"
    status, _, _ = call(verb, comment_url(forge_server, provider, 5, 999999), {"body": "x"}, headers)
    assert status == 404


def test_comment_lists_are_paged_with_next_links(forge_server: ForgeServer) -> None:
    headers = forge_server.auth_headers("github")
    for i in range(3):
        call("POST", comments_url(forge_server, "github", 9), {"body": f"c{i}"}, headers)
    status, response_headers, page1 = call(
        "GET", comments_url(forge_server, "github", 9) + "?per_page=2", None, headers
    )
    assert status == 200
    assert [c["body"] for c in page1] == ["c0", "c1"]
    next_url = response_headers["Link"].split(";")[0].strip("<>")
    _, response_headers, page2 = call("GET", next_url, None, headers)
    assert [c["body"] for c in page2] == ["c2"]
    assert "Link" not in response_headers


@pytest.mark.parametrize("provider", PROVIDERS)
def test_open_pull_requests_are_listed(forge_server: ForgeServer, provider: Provider) -> None:
    forge_server.add_pull_request(provider, "acme/models", 3, head_sha=SHA, head_ref="feature-x")
    forge_server.add_pull_request(provider, "acme/models", 4, head_sha="1" * 40, state="closed")
    headers = forge_server.auth_headers(provider)
    if provider == "gitlab":
        url = f"{forge_server.url('gitlab')}/projects/acme%2Fmodels/merge_requests?state=opened"
        status, _, pulls = call("GET", url, None, headers)
        assert [(p["iid"], p["sha"], p["source_branch"]) for p in pulls] == [(3, SHA, "feature-x")]
    else:
        url = f"{forge_server.url(provider)}/repos/acme/models/pulls?state=open"
        status, _, pulls = call("GET", url, None, headers)
        assert [(p["number"], p["head"]["sha"], p["head"]["ref"]) for p in pulls] == [(3, SHA, "feature-x")]
        status, _, one = call("GET", f"{forge_server.url(provider)}/repos/acme/models/pulls/3", None, headers)
        assert status == 200 and one["head"]["sha"] == SHA
    assert status == 200


# -- the fake checks itself ---------------------------------------------------------------------


def test_an_answer_that_breaks_the_description_is_reported(
    forge_server: ForgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The response check is live: a GitHub status without its required fields is caught."""
    forge_server.expect_violations()
    original = forge_server._statuses

    def broken(call_: Any) -> Any:
        reply = original(call_)
        reply.body = {"state": reply.body["state"]}
        return reply

    monkeypatch.setattr(forge_server, "_statuses", broken)
    assert (
        call(
            "POST",
            status_url(forge_server, "github"),
            {"state": "success"},
            forge_server.auth_headers("github"),
        )[0]
        == 201
    )
    (violation,) = forge_server.violations
    assert violation.kind == "response"


# -- failure injection ------------------------------------------------------------------------


def test_fail_next_answers_500_then_recovers(forge_server: ForgeServer) -> None:
    forge_server.fail_next(2, status=500)
    headers = forge_server.auth_headers("gitea")
    results = [call("POST", status_url(forge_server, "gitea"), {"state": "pending"}, headers)[0] for _ in range(3)]
    assert results == [500, 500, 201]
    assert [r.injected for r in forge_server.requests()] == ["status", "status", None]
    assert len(forge_server.statuses("gitea", "acme/models", SHA)) == 1


def test_rate_limit_answers_403_with_reset(forge_server: ForgeServer) -> None:
    forge_server.rate_limit_next(1, reset_after=120)
    headers = forge_server.auth_headers("github")
    before = time.time()
    status, response_headers, body = call("POST", status_url(forge_server, "github"), {"state": "success"}, headers)
    assert status == 403
    assert response_headers["X-RateLimit-Remaining"] == "0"
    assert before + 100 < int(response_headers["X-RateLimit-Reset"]) <= time.time() + 121
    assert "rate limit" in body["message"]
    assert call("POST", status_url(forge_server, "github"), {"state": "success"}, headers)[0] == 201


def test_throttle_answers_429_with_retry_after(forge_server: ForgeServer) -> None:
    forge_server.throttle_next(1, retry_after=7)
    status, response_headers, _ = call(
        "POST", status_url(forge_server, "gitlab"), {"state": "pending"}, forge_server.auth_headers("gitlab")
    )
    assert status == 429
    assert response_headers["Retry-After"] == "7"


def test_injection_can_target_one_provider(forge_server: ForgeServer) -> None:
    forge_server.fail_next(1, status=503, provider="gitlab")
    assert (
        call(
            "POST",
            status_url(forge_server, "github"),
            {"state": "success"},
            forge_server.auth_headers("github"),
        )[0]
        == 201
    )
    assert (
        call(
            "POST",
            status_url(forge_server, "gitlab"),
            {"state": "success"},
            forge_server.auth_headers("gitlab"),
        )[0]
        == 503
    )


def test_hang_outlasts_the_client_timeout_and_is_bounded(forge_server: ForgeServer) -> None:
    forge_server.hang_next(1, seconds=30)
    headers = forge_server.auth_headers("github")
    started = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        call("POST", status_url(forge_server, "github"), {"state": "success"}, headers, timeout=0.5)
    assert time.monotonic() - started < 5
    assert [r.injected for r in forge_server.requests()] == ["hang"]
    # The next request is served while the hung one is still held.
    assert call("POST", status_url(forge_server, "github"), {"state": "success"}, headers)[0] == 201


# -- recorder ----------------------------------------------------------------------------------


def test_recorder_keeps_method_path_headers_and_json_under_concurrency(forge_server: ForgeServer) -> None:
    headers = {**forge_server.auth_headers("github"), "X-GitHub-Api-Version": "2022-11-28"}
    errors: list[BaseException] = []

    def post(i: int) -> None:
        try:
            body = {"state": "pending", "context": f"polyaxon/op-{i}"}
            assert call("POST", status_url(forge_server, "github"), body, headers)[0] == 201
        except BaseException as error:  # collected and re-raised in the test thread
            errors.append(error)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    records = forge_server.requests("github", "POST", path=r"/statuses/")
    assert len(records) == 20
    assert {r.json["context"] for r in records} == {f"polyaxon/op-{i}" for i in range(20)}
    assert all(r.headers["X-GitHub-Api-Version"] == "2022-11-28" for r in records)
    assert all(r.path == f"/repos/acme/models/statuses/{SHA}" for r in records)
    ids = [s["id"] for s in forge_server.statuses("github", "acme/models", SHA)]
    assert len(set(ids)) == 20


# -- webhooks ----------------------------------------------------------------------------------


def _receiver_url(server: WebhookReceiver) -> str:
    return f"{server.url}/webhooks"


def _verified(provider: Provider, headers: Message, body: bytes, secret: str) -> bool:
    if provider == "github":
        return headers.get("X-Hub-Signature-256") == github_signature(secret, body)
    if provider == "gitea":
        return headers.get("X-Gitea-Signature") == gitea_signature(secret, body)
    return headers.get("X-Gitlab-Token") == secret


@pytest.mark.parametrize("provider", PROVIDERS)
def test_push_webhook_is_signed_and_carries_the_new_head(
    webhook_receiver: WebhookReceiver, webhook_sender: WebhookSender, provider: Provider
) -> None:
    delivery, response = webhook_sender.push(
        provider,
        _receiver_url(webhook_receiver),
        repo="acme/models",
        ref="refs/heads/main",
        before=ZERO_SHA,
        after=SHA,
    )
    assert response.status == 202
    ((headers, body),) = webhook_receiver.received
    assert body == delivery.body
    assert _verified(provider, headers, body, "webhook-secret")
    assert not _verified(provider, headers, body, "other-secret")
    payload = json.loads(body)
    assert payload["ref"] == "refs/heads/main" and payload["after"] == SHA
    event_header, delivery_header, event = {
        "github": ("X-GitHub-Event", "X-GitHub-Delivery", "push"),
        "gitlab": ("X-Gitlab-Event", "X-Gitlab-Event-UUID", "Push Hook"),
        "gitea": ("X-Gitea-Event", "X-Gitea-Delivery", "push"),
    }[provider]
    assert headers[event_header] == event
    assert headers[delivery_header] == delivery.delivery_id


@pytest.mark.parametrize("provider", PROVIDERS)
def test_pull_request_webhook_names_head_and_base(
    webhook_receiver: WebhookReceiver, webhook_sender: WebhookSender, provider: Provider
) -> None:
    delivery, _ = webhook_sender.pull_request(
        provider, _receiver_url(webhook_receiver), repo="acme/models", number=12, action="synchronize", head_sha=SHA
    )
    payload = delivery.payload
    if provider == "gitlab":
        attrs = payload["object_attributes"]
        assert (attrs["iid"], attrs["action"], attrs["last_commit"]["id"]) == (12, "update", SHA)
        assert attrs["source_branch"] == "feature" and attrs["target_branch"] == "main"
    else:
        assert payload["number"] == 12
        assert payload["action"] == ("synchronize" if provider == "github" else "synchronized")
        assert payload["pull_request"]["head"]["sha"] == SHA
        assert payload["pull_request"]["base"]["ref"] == "main"
    assert len(webhook_receiver.received) == 1


def test_redelivery_keeps_the_delivery_id_and_tampering_breaks_the_signature(
    webhook_receiver: WebhookReceiver, webhook_sender: WebhookSender
) -> None:
    delivery, _ = webhook_sender.push(
        "github",
        _receiver_url(webhook_receiver),
        repo="acme/models",
        ref="refs/heads/main",
        before=ZERO_SHA,
        after=SHA,
    )
    webhook_sender.deliver(_receiver_url(webhook_receiver), delivery)
    webhook_sender.deliver(_receiver_url(webhook_receiver), delivery.tampered())
    first, again, tampered = webhook_receiver.received
    assert first[1] == again[1]
    assert first[0]["X-GitHub-Delivery"] == again[0]["X-GitHub-Delivery"] == delivery.delivery_id
    assert tampered[0]["X-GitHub-Delivery"] == delivery.delivery_id
    assert not _verified("github", tampered[0], tampered[1], "webhook-secret")
