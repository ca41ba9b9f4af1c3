"""The webhook endpoints: verify, parse, deduplicate, then hand the event to the daemon.

Routes (mounted on the daemon's HTTP server through `build_app(routes=...)`):

    POST /webhooks/github    X-Hub-Signature-256 (HMAC-SHA256 of the body)
    POST /webhooks/gitlab    X-Gitlab-Token (the configured secret, echoed)
    POST /webhooks/gitea     X-Gitea-Signature (HMAC-SHA256 of the body)
    POST /webhooks/generic   X-Reconciler-Signature: sha256=<hmac>, X-Reconciler-Event: push|ping,
                             X-Reconciler-Delivery: <id>, body {"repo": "<name>", "sha": "<optional>"}

Order matters (safety rule 5): the body is read (capped), then verified against the secrets of
the repos configured for that provider, and only then parsed. One forge project may back several
configured repos (different branches), and several projects may share a secret, so a delivery is
verified against every candidate secret and then only acted on for the repos whose secret
matched. Unverified: 401 and nothing else happens, not even a delivery record.

Answers: 200 handled (or a duplicate), 202 ignored (unknown event, other branch, unknown
project), 400 malformed (or nested deeper than `MAX_JSON_DEPTH`), 401 unverified, 413 too large.

A delivery id is recorded before the event is handed on, so a replay is a no-op even while the
first delivery is still being handled; the hand-off is an enqueue, which does not fail in
practice, and the poll loop remains the fallback for a push that got lost anyway. Ids are
forgotten after `DELIVERY_RETENTION` (pruned at most once per `PRUNE_EVERY`, on a delivery).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.config import RepoConfig
from reconciler.forge.events import (
    Event,
    Ignored,
    MalformedPayload,
    PingEvent,
    PullRequestEvent,
    PushEvent,
    parse_generic,
    parse_gitea,
    parse_github,
    parse_gitlab,
)
from reconciler.forge.secrets import webhook_secret
from reconciler.forge.verify import Scheme, verify
from reconciler.jsonlimits import MAX_JSON_DEPTH, json_too_deep

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024  # GitHub caps payloads at 25 MB; ours are far smaller
OnPush = Callable[[str, str | None], None]
OnPullRequest = Callable[[str, PullRequestEvent], None]


# Delivery ids are kept this long (forges redeliver within hours), and pruned at most this often.
DELIVERY_RETENTION = dt.timedelta(days=7)
PRUNE_EVERY = dt.timedelta(hours=1)


class DeliveryLog(Protocol):
    """Remembers delivery ids (the tracking `Store` is one)."""

    def record_delivery(self, provider: str, delivery_id: str, now: dt.datetime) -> bool:
        """True the first time `delivery_id` is seen for `provider`."""
        ...

    def prune_deliveries(self, before: dt.datetime) -> int:
        """Forget ids received before `before`; how many were forgotten."""
        ...


@dataclass(frozen=True)
class WebhookTarget:
    """A configured repo a webhook can be for."""

    repo: str
    provider: str  # github | gitlab | gitea
    project: str
    branch: str
    secret: str = ""

    def names(self, project: str) -> bool:
        # GitHub and Gitea repository names are case-insensitive; GitLab ids are digits.
        return self.project.strip("/").lower() == project.strip("/").lower()


def webhook_targets(repos: Iterable[RepoConfig]) -> list[WebhookTarget]:
    """One target per repo with a forge and a webhook secret (secrets read and registered now)."""
    targets = []
    for repo in repos:
        if repo.forge is None:
            continue
        secret = webhook_secret(repo.forge)
        if secret is None:
            continue
        targets.append(WebhookTarget(repo.name, repo.forge.provider, repo.forge.project, repo.branch, secret))
    return targets


@dataclass(frozen=True)
class _Endpoint:
    scheme: Scheme
    event_headers: tuple[str, ...]
    delivery_headers: tuple[str, ...]
    parse: Callable[[str, Any], Event]


_ENDPOINTS: dict[str, _Endpoint] = {
    "github": _Endpoint("github", ("X-GitHub-Event",), ("X-GitHub-Delivery",), parse_github),
    # Gitea also sends GitHub's headers; its own come first.
    "gitea": _Endpoint("gitea", ("X-Gitea-Event",), ("X-Gitea-Delivery",), parse_gitea),
    "gitlab": _Endpoint("gitlab", ("X-Gitlab-Event",), ("X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"), parse_gitlab),
    "generic": _Endpoint("generic", ("X-Reconciler-Event",), ("X-Reconciler-Delivery",), parse_generic),
}


class _TooLarge(Exception):
    pass


class _TooDeep(Exception):
    pass


def _parse_json(body: bytes) -> Any:
    if json_too_deep(body):
        raise _TooDeep
    return json.loads(body)


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, **body: Any) -> Response:
    return JSONResponse(body, status_code=status)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def webhook_routes(
    targets: Sequence[WebhookTarget],
    *,
    on_push: OnPush,
    on_pull_request: OnPullRequest,
    deliveries: DeliveryLog,
    clock: Callable[[], dt.datetime] = _now,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> list[Route]:
    """The Starlette routes of the four webhook endpoints (see the module docstring)."""
    pruned: list[dt.datetime] = []  # when delivery ids were last pruned

    def record(provider: str, delivery_id: str) -> bool:
        now = clock()
        first = deliveries.record_delivery(provider, delivery_id, now)
        if not pruned or now - pruned[-1] >= PRUNE_EVERY:
            pruned[:] = [now]
            forgotten = deliveries.prune_deliveries(now - DELIVERY_RETENTION)
            if forgotten:
                log.info("forgot %d webhook delivery ids older than %s", forgotten, DELIVERY_RETENTION)
        return first

    def candidates(provider: str, request: Request) -> list[WebhookTarget]:
        found = [t for t in targets if provider == "generic" or t.provider == provider]
        # `?repo=<name>` narrows the candidates when one forge project feeds several repos.
        wanted = request.query_params.get("repo")
        return [t for t in found if wanted is None or t.repo == wanted]

    def matching(provider: str, event: Event, verified: list[WebhookTarget]) -> list[WebhookTarget]:
        projects: tuple[str, ...] = ()
        if isinstance(event, PushEvent | PullRequestEvent):
            projects = event.projects
        if provider == "generic":
            return [t for t in verified if t.repo in projects]
        return [t for t in verified if any(t.names(p) for p in projects)]

    def dispatch(event: Event, hits: list[WebhookTarget]) -> Response:
        if isinstance(event, PushEvent):
            if event.provider != "generic" and (event.deleted or event.branch is None):
                return _answer(202, ignored="branch deleted or not a branch")
            queued = []
            for target in hits:
                if event.provider == "generic" or event.branch == target.branch:
                    on_push(target.repo, event.after or None)
                    queued.append(target.repo)
            if not queued:
                return _answer(202, ignored=f"push to {event.ref}, not a tracked branch")
            return _answer(200, queued=queued)
        assert isinstance(event, PullRequestEvent)
        checked = []
        for target in hits:
            if event.into(target.branch):
                on_pull_request(target.repo, event)
                checked.append(target.repo)
        if not checked:
            return _answer(202, ignored=f"pull request into {event.base_ref}, not a tracked branch")
        return _answer(200, checked=checked)

    def make(provider: str) -> Callable[[Request], Any]:
        endpoint = _ENDPOINTS[provider]

        async def handle(request: Request) -> Response:
            try:
                body = await _read_capped(request, max_body_bytes)
            except _TooLarge:
                return _answer(413, error=f"body larger than {max_body_bytes} bytes")
            headers = request.headers
            pool = candidates(provider, request)
            verified = [t for t in pool if verify(endpoint.scheme, t.secret, body, headers)]
            if not verified:
                log.warning("webhook rejected: signature does not verify", extra={"provider": provider})
                return _answer(401, error="signature does not verify")
            event_name = next((headers[h] for h in endpoint.event_headers if headers.get(h)), None)
            if event_name is None:
                return _answer(400, error=f"missing {endpoint.event_headers[0]} header")
            try:
                payload = await run_in_threadpool(_parse_json, body)
            except _TooDeep:
                return _answer(400, error=f"body nests deeper than {MAX_JSON_DEPTH} levels")
            except (ValueError, UnicodeDecodeError, RecursionError):
                return _answer(400, error="body is not JSON")
            try:
                event = endpoint.parse(event_name, payload)
            except MalformedPayload as e:
                return _answer(400, error=f"malformed {event_name} payload: {e}")
            if isinstance(event, Ignored):
                return _answer(202, ignored=event.reason)
            if isinstance(event, PingEvent):
                return _answer(200, pong=True)
            hits = matching(provider, event, verified)
            if not hits:
                others = [t for t in targets if t not in verified]
                if matching(provider, event, others):
                    # The project is configured, but under another secret than the one that signed.
                    log.warning("webhook rejected: signed for another repo", extra={"provider": provider})
                    return _answer(401, error="signature does not verify for this project")
                return _answer(202, ignored="no configured repo for this project")
            delivery = next((headers[h] for h in endpoint.delivery_headers if headers.get(h)), None)
            delivery_id = delivery or "sha256:" + hashlib.sha256(body).hexdigest()
            first = await run_in_threadpool(record, provider, delivery_id[:255])
            if not first:
                return _answer(200, duplicate=True)
            return await run_in_threadpool(dispatch, event, hits)

        return handle

    return [Route(f"/webhooks/{p}", make(p), methods=["POST"]) for p in _ENDPOINTS]
