"""The webhook endpoints on a real HTTP server, with delivery ids recorded in a real tracking DB
(SQLite and PostgreSQL), fed by the signed-delivery sender that speaks each forge's format."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import ForgeConfig, RepoConfig
from reconciler.forge import PullRequestEvent, webhook_routes, webhook_targets
from reconciler.metrics import Metrics
from reconciler.server import HttpServer, build_app
from reconciler.tracking import Store, WebhookDelivery
from tests.infra.webhooks import WebhookSender, sign

from .conftest import PROJECTS

SECRET = "webhook-secret"
HEAD = "b" * 40


@dataclass
class Calls:
    pushes: list[tuple[str, str | None]] = field(default_factory=list)
    pulls: list[tuple[str, PullRequestEvent]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_push(self, repo: str, sha: str | None) -> None:
        with self.lock:
            self.pushes.append((repo, sha))

    def on_pull_request(self, repo: str, event: PullRequestEvent) -> None:
        with self.lock:
            self.pulls.append((repo, event))


@dataclass
class Receiver:
    base: str
    calls: Calls
    store: Store

    def url(self, provider: str) -> str:
        return f"{self.base}/webhooks/{provider}"

    def deliveries(self) -> list[str]:
        with self.store.unit_of_work() as s:
            return [d.delivery_id for d in s.query(WebhookDelivery).all()]


def _repos(tmp_path: Path) -> list[RepoConfig]:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    other = tmp_path / "other-secret"
    other.write_text("another-secret\n")
    other.chmod(0o600)
    repos = [
        RepoConfig(
            name=f"{p}-models",
            url="file:///srv/x.git",
            forge=ForgeConfig(provider=p, project=PROJECTS[p], webhook_secret_file=secret_file),  # type: ignore[arg-type]
        )
        for p in ("github", "gitlab", "gitea")
    ]
    # A second project on GitHub with its own secret: a delivery signed for one must not act on the other.
    repos.append(
        RepoConfig(
            name="github-other",
            url="file:///srv/y.git",
            forge=ForgeConfig(provider="github", project="acme/other", webhook_secret_file=other),
        )
    )
    return repos


@pytest.fixture
def receiver(tmp_path: Path, store: Store) -> Iterator[Receiver]:
    calls = Calls()
    routes = webhook_routes(
        webhook_targets(_repos(tmp_path)),
        on_push=calls.on_push,
        on_pull_request=calls.on_pull_request,
        deliveries=store,
        max_body_bytes=64 * 1024,
    )
    server = HttpServer(build_app(Metrics(), routes=routes), "127.0.0.1", 0)
    server.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.port}", calls, store)
    finally:
        server.stop()


PROVIDERS = ("github", "gitlab", "gitea")


def _push(sender: WebhookSender, provider: Any, receiver: Receiver, **kw: Any) -> Any:
    args = {"repo": PROJECTS[provider], "ref": "refs/heads/main", "before": "a" * 40, "after": HEAD, **kw}
    return sender.push(provider, receiver.url(provider), **args)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_push_enqueues_once_and_a_replay_is_a_no_op(receiver: Receiver, provider: Any) -> None:
    sender = WebhookSender(SECRET)
    delivery, response = _push(sender, provider, receiver)
    assert response.status == 200, response.body
    assert json.loads(response.body) == {"queued": [f"{provider}-models"]}
    assert receiver.calls.pushes == [(f"{provider}-models", HEAD)]
    replay = sender.deliver(receiver.url(provider), delivery)
    assert replay.status == 200 and json.loads(replay.body) == {"duplicate": True}
    assert receiver.calls.pushes == [(f"{provider}-models", HEAD)]
    assert receiver.deliveries() == [delivery.delivery_id]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unverified_deliveries_get_401_and_change_nothing(receiver: Receiver, provider: Any) -> None:
    good = sign(provider, *_payload(provider), SECRET)
    unsigned = sign(provider, *_payload(provider), None)
    wrong = sign(provider, *_payload(provider), "not-the-secret")
    sender = WebhookSender(SECRET)
    tampered = good.tampered()
    for bad in (unsigned, wrong) + (() if provider == "gitlab" else (tampered,)):
        response = sender.deliver(receiver.url(provider), bad)
        assert response.status == 401, (bad.headers, response.body)
    # A bad delivery under a real delivery id must not burn that id.
    forged = replace(wrong, delivery_id=good.delivery_id, headers={**wrong.headers, **_id_headers(provider, good)})
    assert sender.deliver(receiver.url(provider), forged).status == 401
    assert receiver.calls.pushes == [] and receiver.deliveries() == []
    assert sender.deliver(receiver.url(provider), good).status == 200
    assert len(receiver.calls.pushes) == 1


def _payload(provider: Any) -> tuple[str, dict[str, Any]]:
    from tests.infra.webhooks import push_payload

    return push_payload(provider, repo=PROJECTS[provider], ref="refs/heads/main", before="a" * 40, after=HEAD)


def _id_headers(provider: str, delivery: Any) -> dict[str, str]:
    names = {"github": "X-GitHub-Delivery", "gitlab": "X-Gitlab-Event-UUID", "gitea": "X-Gitea-Delivery"}
    return {names[provider]: delivery.headers[names[provider]]}


def test_a_secret_of_one_repo_cannot_act_on_another(receiver: Receiver) -> None:
    # Signed with the secret of github-models, but naming acme/other (which has its own secret).
    sender = WebhookSender(SECRET)
    _, response = sender.push(
        "github", receiver.url("github"), repo="acme/other", ref="refs/heads/main", before="a" * 40, after=HEAD
    )
    assert response.status == 401
    _, response = WebhookSender("another-secret").push(
        "github", receiver.url("github"), repo="acme/other", ref="refs/heads/main", before="a" * 40, after=HEAD
    )
    assert response.status == 200
    assert receiver.calls.pushes == [("github-other", HEAD)]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_pull_request_lifecycle_events_reach_the_checker(receiver: Receiver, provider: Any) -> None:
    sender = WebhookSender(SECRET)
    for action in ("opened", "synchronize", "closed"):
        _, response = sender.pull_request(
            provider,
            receiver.url(provider),
            repo=PROJECTS[provider],
            number=12,
            action=action,
            head_sha=HEAD,
            before="c" * 40,
            merged=action == "closed",
        )
        assert response.status == 200, response.body
    got = [(repo, e.number, e.action, e.head_sha, e.merged) for repo, e in receiver.calls.pulls]
    repo = f"{provider}-models"
    assert got == [
        (repo, 12, "opened", HEAD, False),
        (repo, 12, "synchronize", HEAD, False),
        (repo, 12, "closed", HEAD, True),
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_ignored_malformed_and_oversized(receiver: Receiver, provider: Any) -> None:
    sender = WebhookSender(SECRET)
    _, other_branch = _push(sender, provider, receiver, ref="refs/heads/feature")
    assert other_branch.status == 202
    _, deleted = _push(sender, provider, receiver, after="0" * 40)
    assert deleted.status == 202
    unknown = sign(provider, "issues" if provider != "gitlab" else "Issue Hook", {"x": 1}, SECRET)
    assert sender.deliver(receiver.url(provider), unknown).status == 202
    good = sign(provider, *_payload(provider), SECRET)
    broken_body = b"{not json"
    broken = replace(good, body=broken_body, headers=_resigned(provider, good.headers, broken_body))
    assert sender.deliver(receiver.url(provider), broken).status == 400
    missing = _payload(provider)[1]
    missing.pop("ref")
    assert sender.deliver(receiver.url(provider), sign(provider, "push", missing, SECRET)).status == 400
    huge_body = json.dumps({"pad": "x" * 70_000}).encode()
    huge = replace(good, body=huge_body, headers=_resigned(provider, good.headers, huge_body))
    assert sender.deliver(receiver.url(provider), huge).status == 413
    assert receiver.calls.pushes == []


def _resigned(provider: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    out = dict(headers)
    if provider == "github":
        out["X-Hub-Signature-256"] = "sha256=" + digest
    elif provider == "gitea":
        out["X-Gitea-Signature"] = digest
    return out


def test_ping_and_generic_endpoint(receiver: Receiver) -> None:
    sender = WebhookSender(SECRET)
    ping = sign("github", "ping", {"zen": "Keep it simple.", "hook_id": 1}, SECRET)
    assert sender.deliver(receiver.url("github"), ping).status == 200
    body = json.dumps({"repo": "gitea-models", "sha": HEAD}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    from tests.infra.webhooks import WebhookDelivery as Delivery

    headers = {
        "Content-Type": "application/json",
        "X-Reconciler-Event": "push",
        "X-Reconciler-Delivery": "gen-1",
        "X-Reconciler-Signature": signature,
    }
    generic = Delivery("github", "push", "gen-1", headers, body)
    assert sender.deliver(receiver.url("generic"), generic).status == 200
    assert sender.deliver(receiver.url("generic"), generic).status == 200  # duplicate
    bad = Delivery("github", "push", "gen-2", {**headers, "X-Reconciler-Signature": "sha256=00"}, body)
    assert sender.deliver(receiver.url("generic"), bad).status == 401
    assert receiver.calls.pushes == [("gitea-models", HEAD)]
