"""The fake forge and a real Gitea answer the reconciler's calls alike.

The same client-visible checks run against both; the real server's answers are also held to the
API description the fake enforces, and its webhook deliveries to what ``webhooks`` builds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from tests.infra.forge_server import ForgeServer
from tests.infra.gitea_server import USER, GiteaServer
from tests.infra.wait import wait_until
from tests.infra.webhooks import ZERO_SHA, WebhookReceiver, push_payload, sign

pytestmark = pytest.mark.slow

_counter = iter(range(1, 10_000))


@dataclass
class Target:
    kind: str
    api_url: str
    token: str
    repo: str
    sha: str
    pull_number: int
    head_ref: str

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        secret = self.token if token is None else token
        if secret:
            headers["Authorization"] = f"token {secret}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@pytest.fixture(params=["fake", "real"])
def target(request: pytest.FixtureRequest, forge_server: ForgeServer) -> Target:
    n = next(_counter)
    if request.param == "fake":
        sha = hashlib.sha1(str(n).encode()).hexdigest()
        repo = f"{USER}/models-{n}"
        forge_server.add_pull_request("gitea", repo, 1, head_sha=sha, head_ref="feature")
        return Target("fake", forge_server.url("gitea"), forge_server.tokens["gitea"], repo, sha, 1, "feature")
    gitea: GiteaServer = request.getfixturevalue("gitea_server")
    name = f"models-{n}"
    gitea.create_repo(name)
    pull = gitea.open_pull_request(name, "feature")
    return Target("real", gitea.api_url, gitea.token, f"{USER}/{name}", pull["head"]["sha"], pull["number"], "feature")


def test_status_is_created_and_listed_newest_first(target: Target, forge_server: ForgeServer) -> None:
    for state in ("pending", "success"):
        status, created = target.call(
            "POST",
            f"/repos/{target.repo}/statuses/{target.sha}",
            {
                "state": state,
                "context": "polyaxon/validate",
                "description": "ok",
                "target_url": "http://x.test/r",
            },
        )
        assert status == 201
        assert (created["status"], created["context"]) == (state, "polyaxon/validate")
    status, listed = target.call("GET", f"/repos/{target.repo}/commits/{target.sha}/statuses")
    assert status == 200
    # Gitea lists newest first by creation second; two statuses of the same second come in
    # no defined order, so compare by id (which grows with time on both).
    assert [s["status"] for s in sorted(listed, key=lambda s: -s["id"])] == ["success", "pending"]
    if target.kind == "real":
        path = f"/repos/{target.repo}/commits/{target.sha}/statuses"
        assert forge_server.description_errors("gitea", "GET", path, 200, listed) == []


def test_comments_create_update_list(target: Target, forge_server: ForgeServer) -> None:
    base = f"/repos/{target.repo}/issues"
    status, created = target.call("POST", f"{base}/{target.pull_number}/comments", {"body": "plan: 1 run"})
    assert status == 201 and created["body"] == "plan: 1 run"
    status, updated = target.call("PATCH", f"{base}/comments/{created['id']}", {"body": "plan: 2 runs"})
    assert status == 200 and (updated["id"], updated["body"]) == (created["id"], "plan: 2 runs")
    status, listed = target.call("GET", f"{base}/{target.pull_number}/comments")
    assert [(c["id"], c["body"]) for c in listed] == [(created["id"], "plan: 2 runs")]
    if target.kind == "real":
        assert forge_server.description_errors("gitea", "POST", f"{base}/1/comments", 201, created) == []


def test_open_pull_requests_list_the_head(target: Target, forge_server: ForgeServer) -> None:
    status, pulls = target.call("GET", f"/repos/{target.repo}/pulls?state=open")
    assert status == 200
    assert [(p["number"], p["head"]["sha"], p["head"]["ref"], p["base"]["ref"]) for p in pulls] == [
        (target.pull_number, target.sha, target.head_ref, "main")
    ]
    if target.kind == "real":
        errors = forge_server.description_errors("gitea", "GET", f"/repos/{target.repo}/pulls", 200, pulls)
        assert errors == []


def test_a_pull_requests_labels_are_read_back_from_the_api(
    target: Target, forge_server: ForgeServer, request: pytest.FixtureRequest
) -> None:
    """What `previews_require_label` relies on: the client reads the labels a maintainer set."""
    from reconciler.forge.statuses import GiteaClient

    client = GiteaClient(target.repo, target.token, target.api_url)
    try:
        assert client.pull_request_labels(target.pull_number) == frozenset()
        if target.kind == "fake":
            forge_server.set_labels("gitea", target.repo, target.pull_number, ["ok-to-preview"])
        else:
            gitea: GiteaServer = request.getfixturevalue("gitea_server")
            label = gitea.api("POST", f"/repos/{target.repo}/labels", {"name": "ok-to-preview", "color": "#00aa00"})
            gitea.api("POST", f"/repos/{target.repo}/issues/{target.pull_number}/labels", {"labels": [label["id"]]})
        assert client.pull_request_labels(target.pull_number) == frozenset({"ok-to-preview"})
    finally:
        client.close()
    if target.kind == "real":
        path = f"/repos/{target.repo}/pulls/{target.pull_number}"
        _, pull = target.call("GET", path)
        assert forge_server.description_errors("gitea", "GET", path, 200, pull) == []


def test_missing_or_wrong_token_is_401(target: Target) -> None:
    path = f"/repos/{target.repo}/statuses/{target.sha}"
    assert target.call("POST", path, {"state": "success"}, token="")[0] == 401
    assert target.call("POST", path, {"state": "success"}, token="wrong")[0] == 401


def test_real_gitea_accepts_a_state_its_description_forbids(
    gitea_server: GiteaServer, forge_server: ForgeServer
) -> None:
    """Why the fake is the stricter judge: Gitea stores ``done`` although its API says no."""
    forge_server.expect_violations()
    name = f"lenient-{next(_counter)}"
    gitea_server.create_repo(name)
    sha = gitea_server.head(name)
    created = gitea_server.api("POST", f"/repos/{USER}/{name}/statuses/{sha}", {"state": "done"})
    assert created["status"] == "done"
    request = urllib.request.Request(
        f"{forge_server.url('gitea')}/repos/{USER}/{name}/statuses/{sha}",
        data=b'{"state": "done"}',
        headers={**forge_server.auth_headers("gitea"), "Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 422


# -- webhooks: what real Gitea sends vs what the sender builds -----------------------------------


def _keys(value: Any, prefix: str = "") -> set[str]:
    """Dotted key paths of nested dicts (lists are looked into through their first item)."""
    if isinstance(value, list):
        return _keys(value[0], prefix + "[].") if value else set()
    if not isinstance(value, dict):
        return set()
    out: set[str] = set()
    for key, item in value.items():
        out.add(prefix + key)
        out |= _keys(item, f"{prefix}{key}.")
    return out


def test_sender_builds_what_real_gitea_sends_on_push(
    gitea_server: GiteaServer, webhook_receiver: WebhookReceiver
) -> None:
    name = f"hooked-{next(_counter)}"
    gitea_server.create_repo(name)
    url = f"http://127.0.0.1:{webhook_receiver.server_address[1]}/hook"
    config = {"url": url, "content_type": "json", "secret": "webhook-secret"}
    gitea_server.api(
        "POST",
        f"/repos/{USER}/{name}/hooks",
        {"type": "gitea", "config": config, "events": ["push"], "active": True},
    )
    before = gitea_server.head(name)
    gitea_server.api(
        "POST",
        f"/repos/{USER}/{name}/contents/ops/a.yaml",
        {"content": "a2luZDogb3BlcmF0aW9uCg==", "branch": "main", "message": "add op"},
    )
    wait_until(lambda: webhook_receiver.received, timeout=30, what="gitea push delivery")
    real_headers, real_body = webhook_receiver.received[0]
    real = json.loads(real_body)
    expected_signature = hmac.new(b"webhook-secret", real_body, hashlib.sha256).hexdigest()
    assert real_headers["X-Gitea-Signature"] == expected_signature
    assert real_headers["X-Gitea-Event"] == "push"
    assert (real["before"], real["ref"]) == (before, "refs/heads/main")

    event, ours = push_payload("gitea", repo=f"{USER}/{name}", ref="refs/heads/main", before=ZERO_SHA, after=before)
    built = sign("gitea", event, ours, "webhook-secret")
    # Every header and payload field the sender invents is one real Gitea sends too.
    real_names = {k.lower() for k in real_headers}
    assert {k.lower() for k in built.headers} - {"content-type", "user-agent"} <= real_names
    assert _keys(ours) <= _keys(real), sorted(_keys(ours) - _keys(real))
