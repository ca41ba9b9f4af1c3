"""Signed webhook deliveries as GitHub, GitLab and Gitea send them, POSTed over real HTTP.

The reconciler's webhook endpoint must verify each provider's signature scheme, tell providers
apart by their headers (Gitea also sends GitHub's header names), deduplicate by delivery id and
read push and pull-request payloads. These builders produce deliveries with each provider's
headers, signature and payload shape (the fields a consumer reads, named as the providers name
them), and the sender posts them, or re-posts one unchanged to test deduplication.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email.message import Message
from http.client import HTTPConnection, HTTPSConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

Provider = Literal["github", "gitlab", "gitea"]
ZERO_SHA = "0" * 40
PullAction = Literal["opened", "synchronize", "closed", "reopened", "labeled"]

# Each provider's word for the same pull-request action ("labeled": a label was added).
_GITLAB_ACTIONS = {
    "opened": "open",
    "synchronize": "update",
    "closed": "close",
    "reopened": "reopen",
    "labeled": "update",
}
_GITEA_ACTIONS = {
    "opened": "opened",
    "synchronize": "synchronized",
    "closed": "closed",
    "reopened": "reopened",
    "labeled": "label_updated",
}


@dataclass(frozen=True)
class WebhookDelivery:
    provider: Provider
    event: str
    delivery_id: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    def tampered(self) -> WebhookDelivery:
        """The same headers (and signature) over a changed body: must be rejected."""
        data = self.payload
        data["tampered"] = True
        return replace(self, body=json.dumps(data).encode())


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: bytes
    headers: dict[str, str]


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def gitea_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(provider: Provider, event: str, payload: dict[str, Any], secret: str | None) -> WebhookDelivery:
    """Serialise ``payload`` and add the provider's delivery headers (signed when ``secret``)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    delivery_id = str(uuid.uuid4())
    headers = {"Content-Type": "application/json"}
    if provider == "github":
        headers |= {
            "User-Agent": "GitHub-Hookshot/test",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id,
            "X-GitHub-Hook-ID": "1",
        }
        if secret is not None:
            headers["X-Hub-Signature-256"] = github_signature(secret, body)
    elif provider == "gitlab":
        gitlab_event = {"push": "Push Hook", "merge_request": "Merge Request Hook"}.get(event, event)
        headers |= {
            "User-Agent": "GitLab/17.0.0",
            "X-Gitlab-Event": gitlab_event,
            "X-Gitlab-Event-UUID": delivery_id,
            "X-Gitlab-Webhook-UUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "webhook")),
            "X-Gitlab-Instance": "https://gitlab.example.test",
        }
        # GitLab does not sign: it echoes the configured secret token.
        if secret is not None:
            headers["X-Gitlab-Token"] = secret
        event = gitlab_event
    else:
        event_type = {"synchronized": "pull_request_sync", "label_updated": "pull_request_label"}.get(
            str(payload.get("action")), event
        )
        headers |= {
            "User-Agent": "Go-http-client/1.1",
            "X-Gitea-Event": event,
            "X-Gitea-Event-Type": event_type,
            "X-Gitea-Delivery": delivery_id,
            # Gitea also sends Gogs' and GitHub's header names, so a receiver must look at
            # X-Gitea-* first to tell it from GitHub.
            "X-Gogs-Event": event,
            "X-Gogs-Delivery": delivery_id,
            "X-GitHub-Event": event,
            "X-GitHub-Event-Type": event_type,
            "X-GitHub-Delivery": delivery_id,
        }
        if secret is not None:
            signature = gitea_signature(secret, body)
            headers |= {
                "X-Gitea-Signature": signature,
                "X-Gogs-Signature": signature,
                "X-Hub-Signature-256": "sha256=" + signature,
            }
    return WebhookDelivery(provider, event, delivery_id, headers, body)


def _owner_name(repo: str) -> tuple[str, str]:
    owner, _, name = repo.partition("/")
    return owner, name


def _github_repo(repo: str, web: str) -> dict[str, Any]:
    owner, name = _owner_name(repo)
    return {
        "id": 1296269,
        "node_id": "R_test",
        "name": name,
        "full_name": repo,
        "private": False,
        "owner": {"login": owner, "id": 1, "type": "Organization"},
        "html_url": f"{web}/{repo}",
        "url": f"https://api.github.com/repos/{repo}",
        "clone_url": f"{web}/{repo}.git",
        "ssh_url": f"git@github.com:{repo}.git",
        "default_branch": "main",
    }


def _gitea_repo(repo: str, web: str) -> dict[str, Any]:
    owner, name = _owner_name(repo)
    user = {"id": 1, "login": owner, "username": owner}
    return {
        "id": 7,
        "owner": user,
        "name": name,
        "full_name": repo,
        "private": False,
        "html_url": f"{web}/{repo}",
        "clone_url": f"{web}/{repo}.git",
        "ssh_url": f"git@gitea.example.test:{repo}.git",
        "default_branch": "main",
    }


def _gitlab_project(repo: str, web: str, project_id: int) -> dict[str, Any]:
    namespace, name = _owner_name(repo)
    return {
        "id": project_id,
        "name": name,
        "namespace": namespace,
        "path_with_namespace": repo,
        "web_url": f"{web}/{repo}",
        "git_http_url": f"{web}/{repo}.git",
        "git_ssh_url": f"git@gitlab.example.test:{repo}.git",
        "default_branch": "main",
    }


def _commit(provider: Provider, repo: str, web: str, sha: str, files: dict[str, list[str]]) -> dict[str, Any]:
    author = {"name": "Test Author", "email": "author@example.test", "username": "author"}
    commit: dict[str, Any] = {
        "id": sha,
        "message": f"commit {sha[:7]}\n",
        "timestamp": "2024-01-01T00:00:00Z",
        "url": f"{web}/{repo}/commit/{sha}",
        "author": author,
        "added": files.get("added", []),
        "modified": files.get("modified", []),
        "removed": files.get("removed", []),
    }
    if provider == "gitlab":
        commit["title"] = commit["message"].strip()
        commit["author"] = {"name": author["name"], "email": author["email"]}
    else:
        commit["committer"] = author
    if provider == "github":
        commit["distinct"] = True
        commit["tree_id"] = hashlib.sha1(sha.encode()).hexdigest()
    return commit


def push_payload(
    provider: Provider,
    *,
    repo: str,
    ref: str,
    before: str,
    after: str,
    web_url: str = "",
    files: dict[str, list[str]] | None = None,
    forced: bool = False,
    project_id: int = 4200,
) -> tuple[str, dict[str, Any]]:
    """(event name, payload) of a push of ``before..after`` to ``ref``; ``after`` zero = delete."""
    web = web_url or {"github": "https://github.com", "gitlab": "https://gitlab.example.test"}.get(
        provider, "https://gitea.example.test"
    )
    deleted = after == ZERO_SHA
    commits = [] if deleted else [_commit(provider, repo, web, after, files or {"modified": []})]
    if provider == "gitlab":
        return "push", {
            "object_kind": "push",
            "event_name": "push",
            "before": before,
            "after": after,
            "ref": ref,
            "ref_protected": ref == "refs/heads/main",
            "checkout_sha": None if deleted else after,
            "user_id": 1,
            "user_name": "Test Author",
            "user_username": "author",
            "user_email": "author@example.test",
            "project_id": project_id,
            "project": _gitlab_project(repo, web, project_id),
            "commits": commits,
            "total_commits_count": len(commits),
            "repository": {
                "name": _owner_name(repo)[1],
                "url": f"{web}/{repo}.git",
                "homepage": f"{web}/{repo}",
                "git_http_url": f"{web}/{repo}.git",
                "git_ssh_url": f"git@gitlab.example.test:{repo}.git",
            },
        }
    sender = {"id": 1, "login": "author", "username": "author"}
    payload: dict[str, Any] = {
        "ref": ref,
        "before": before,
        "after": after,
        "commits": commits,
        "head_commit": commits[-1] if commits else None,
        # GitHub's pusher is a name and e-mail, Gitea's a user.
        "pusher": {"name": "author", "email": "author@example.test"} if provider == "github" else sender,
        "sender": sender,
    }
    if provider == "github":
        payload |= {
            "repository": _github_repo(repo, web),
            "created": before == ZERO_SHA,
            "deleted": deleted,
            "forced": forced,
            "base_ref": None,
            "compare": f"{web}/{repo}/compare/{before[:12]}...{after[:12]}",
        }
    else:
        payload |= {
            "repository": _gitea_repo(repo, web),
            "compare_url": f"{web}/{repo}/compare/{before}...{after}",
            "total_commits": len(commits),
        }
    return "push", payload


def pull_request_payload(
    provider: Provider,
    *,
    repo: str,
    number: int,
    action: PullAction = "opened",
    head_sha: str,
    head_ref: str = "feature",
    base_ref: str = "main",
    base_sha: str = ZERO_SHA,
    before: str | None = None,
    merged: bool = False,
    title: str = "Change",
    web_url: str = "",
    project_id: int = 4200,
    fork: str | None = None,
    label: str = "safe-to-preview",
) -> tuple[str, dict[str, Any]]:
    """(event name, payload) of a pull/merge request event; ``action`` uses GitHub's words.

    ``fork``: the head comes from this other repository (``owner/name``), as each forge says it.
    ``label``: the label a ``labeled`` action added.
    """
    web = web_url or {"github": "https://github.com", "gitlab": "https://gitlab.example.test"}.get(
        provider, "https://gitea.example.test"
    )
    state_open = action != "closed"
    if provider == "gitlab":
        attributes: dict[str, Any] = {
            "id": 500 + number,
            "iid": number,
            "title": title,
            "action": "merge" if merged else _GITLAB_ACTIONS[action],
            "state": "merged" if merged else ("opened" if state_open else "closed"),
            "source_branch": head_ref,
            "target_branch": base_ref,
            "source_project_id": project_id + 1 if fork else project_id,
            "target_project_id": project_id,
            "url": f"{web}/{repo}/-/merge_requests/{number}",
            "last_commit": {
                "id": head_sha,
                "message": "head commit",
                "url": f"{web}/{repo}/-/commit/{head_sha}",
            },
        }
        if action == "synchronize" and before:
            attributes["oldrev"] = before
        changes = {"labels": {"previous": [], "current": [{"id": 1, "title": label}]}} if action == "labeled" else {}
        return "merge_request", {
            "object_kind": "merge_request",
            "event_type": "merge_request",
            "user": {"id": 1, "name": "Test Author", "username": "author"},
            "project": _gitlab_project(repo, web, project_id),
            "object_attributes": attributes,
            "changes": changes,
            "repository": {
                "name": _owner_name(repo)[1],
                "url": f"{web}/{repo}.git",
                "homepage": f"{web}/{repo}",
            },
        }
    owner = _owner_name(repo)[0]
    make_repo = _github_repo if provider == "github" else _gitea_repo
    repository = make_repo(repo, web)
    head_repo = make_repo(fork, web) if fork else repository
    if fork:
        head_repo["id"] = repository["id"] + 1
        head_repo["fork"] = True
    head = {"ref": head_ref, "sha": head_sha, "label": f"{_owner_name(fork or repo)[0]}:{head_ref}", "repo": head_repo}
    base = {"ref": base_ref, "sha": base_sha, "label": f"{owner}:{base_ref}", "repo": repository}
    if provider == "gitea":
        head["repo_id"], base["repo_id"] = head_repo["id"], repository["id"]
    pull = {
        "id": 700 + number,
        "number": number,
        "state": "open" if state_open else "closed",
        "title": title,
        "html_url": f"{web}/{repo}/pull{'' if provider == 'github' else 's'}/{number}",
        "head": head,
        "base": base,
        "merged": merged,
        "draft": False,
        "user": {"id": 1, "login": "author"},
    }
    payload: dict[str, Any] = {
        "action": action if provider == "github" else _GITEA_ACTIONS[action],
        "number": number,
        "pull_request": pull,
        "repository": repository,
        "sender": {"id": 1, "login": "author"},
    }
    if provider == "github" and action == "synchronize":
        payload |= {"before": before or ZERO_SHA, "after": head_sha}
    if action == "labeled":
        payload["label"] = {"id": 1, "name": label}
    return "pull_request", payload


class WebhookSender:
    """Builds and POSTs signed deliveries to a receiver URL."""

    def __init__(self, secret: str | None = "webhook-secret", timeout: float = 10.0) -> None:
        self.secret = secret
        self.timeout = timeout
        self.sent: list[WebhookDelivery] = []

    def push(self, provider: Provider, url: str, **kwargs: Any) -> tuple[WebhookDelivery, WebhookResponse]:
        delivery = sign(provider, *push_payload(provider, **kwargs), self.secret)
        return delivery, self.deliver(url, delivery)

    def pull_request(self, provider: Provider, url: str, **kwargs: Any) -> tuple[WebhookDelivery, WebhookResponse]:
        delivery = sign(provider, *pull_request_payload(provider, **kwargs), self.secret)
        return delivery, self.deliver(url, delivery)

    def deliver(self, url: str, delivery: WebhookDelivery) -> WebhookResponse:
        """POST ``delivery`` as is (re-sending one tests deduplication by delivery id)."""
        self.sent.append(delivery)
        # http.client rather than urllib: urllib re-capitalises header names (X-Github-Event),
        # and the point is to send exactly what the forge sends.
        parts = urlsplit(url)
        connection_class = HTTPSConnection if parts.scheme == "https" else HTTPConnection
        connection = connection_class(parts.netloc, timeout=self.timeout)
        try:
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            connection.request("POST", target, body=delivery.body, headers=delivery.headers)
            response = connection.getresponse()
            return WebhookResponse(response.status, response.read(), dict(response.getheaders()))
        finally:
            connection.close()


class WebhookReceiver(ThreadingHTTPServer):
    """A local endpoint that records every webhook POSTed to it (headers, raw body) and answers 202."""

    daemon_threads = True
    received: list[tuple[Message, bytes]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers, body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def started_webhook_receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(("127.0.0.1", 0), _ReceiverHandler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
