"""Threat: a request that makes the daemon answer 500 with a traceback, or do unbounded work.

Every bad query parameter of the API is a 400 with a JSON error saying which and why; `limit`
is clamped; a signed webhook body nested 100,000 deep is refused before it is parsed. Nothing
here may leave a traceback in the daemon's log.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.e2e.harness import job
from tests.infra.git_server import GitRepoFactory
from tests.infra.webhooks import WebhookSender, github_signature, sign

SECRET = "webhook-secret"

BAD: list[tuple[str, str]] = [
    ("/api/runs?limit=abc", "limit: must be an integer"),
    ("/api/runs?limit=1.5", "limit: must be an integer"),
    ("/api/runs?limit=", "limit: must be an integer"),
    ("/api/runs?limit=0x10", "limit: must be an integer"),
    ("/api/runs?limit=1&limit=2", "limit: given more than once"),
    ("/api/runs?status=bogus", "status: not a run status"),
    ("/api/runs?status=", "status: not a run status"),
    ("/api/runs?repo=" + "r" * 300, "repo: must be 1 to 255 characters"),
    ("/api/runs?op=", "op: must be 1 to 255 characters"),
    ("/api/runs?limt=5", "unknown query parameter 'limt'"),
    ("/api/runs?%ff=1", "unknown query parameter"),
    ("/api/runs/{run}?verbose=1", "unknown query parameter 'verbose'"),
    ("/api/runs/{run}/logs?tail=abc", "tail: must be an integer"),
    ("/api/runs/{run}/logs?tail=1e3", "tail: must be an integer"),
    ("/api/runs/{run}/logs?tail=5&since=1", "unknown query parameter 'since'"),
    ("/api/runs/{run}/logs?follow=yes", "follow: must be true or false"),
    ("/api/runs?cause=bogus", "cause: not a run cause"),
    ("/api/runs?since=yesterday", "since: not an ISO 8601 time"),
    ("/api/runs?cursor=%%%", "cursor: not a cursor this server gave"),
    ("/api/runs?cursor=WyJ4Il0", "cursor: not a cursor this server gave"),
    ("/api/ops?status=bogus", "status: not a run status"),
    ("/api/repos?limit=x", "limit: must be an integer"),
    ("/api/repos/models/commits?valid=maybe", "valid: must be true or false"),
    ("/api/schedules?since=2026-01-01", "unknown query parameter 'since'"),
    ("/api/runs/{run}/children?limit=abc", "limit: must be an integer"),
]


def test_every_bad_query_parameter_is_a_400_with_a_json_error(
    daemons: Any, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    git = git_repo_factory.create("models", {"ops/hello.yaml": job("hello", "for i in 1 2 3; do echo line $i; done")})
    daemon = daemons(
        [{"name": "models", "url": git.file_url, "branch": "main", "interval": 1}],
        f"sqlite:///{tmp_path / 'reconciler.db'}",
    ).start()
    run = daemon.wait_run("#hello", lambda r: r["status"] == "succeeded", "the job to finish")
    wrong = []
    for path, message in BAD:
        answer = daemon.get(path.format(run=run["name"]))
        assert answer is not None
        status, body = answer
        try:
            error = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            error = None
        if status != 400 or not error or message not in error:
            wrong.append(f"{path}: {status} {body[:200]}")
    assert not wrong, "\n".join(wrong)

    # Out of range is clamped, not refused: a huge or negative limit, a huge tail.
    for path, count in [
        ("/api/runs?limit=99999999999999999999", 1),
        ("/api/runs?limit=-1", 1),
        ("/api/runs?limit=0", 1),
    ]:
        answer = daemon.get(path)
        assert answer is not None and answer[0] == 200 and len(json.loads(answer[1])) == count, (path, answer)
    for tail, expected in [("1", "line 3\n"), ("-5", "line 3\n"), ("99999999999999999999", "line 1\nline 2\nline 3\n")]:
        answer = daemon.get(f"/api/runs/{run['name']}/logs?tail={tail}")
        assert answer == (200, expected), (tail, answer)
    missing = daemon.get("/api/runs/no-such-run/logs?tail=2")
    assert missing is not None and missing[0] == 404
    assert json.loads(missing[1]) == {"error": "no run named no-such-run", "detail": {"run": "no-such-run"}}
    log = daemon.log_text()
    assert "Traceback" not in log and "Exception in ASGI" not in log, daemon.log_tail()


def test_a_signed_body_nested_100k_deep_is_refused_before_parsing(
    daemons: Any, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    git = git_repo_factory.create("models", {"README.md": "models\n"})
    secret = tmp_path / "webhook-secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    forge = {"provider": "github", "project": "acme/models", "webhook_secret_file": str(secret)}
    daemon = daemons(
        [{"name": "models", "url": git.file_url, "branch": "main", "interval": 1, "forge": forge}],
        f"sqlite:///{tmp_path / 'reconciler.db'}",
    ).start()
    delivery = sign("github", "push", {}, SECRET)
    deep = b'{"ref": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    bomb = replace(
        delivery, body=deep, headers={**delivery.headers, "X-Hub-Signature-256": github_signature(SECRET, deep)}
    )
    answer = WebhookSender(SECRET).deliver(f"{daemon.url}/webhooks/github", bomb)
    assert answer.status == 400 and b"nests deeper than 64 levels" in answer.body, answer
    assert daemon.get("/healthz") == (200, "ok\n")
    assert "Traceback" not in daemon.log_text() and "RecursionError" not in daemon.log_text()
