"""Against a real Gitea (built from the Go module proxy by `make gitea`): its signed webhook
deliveries verified and parsed by our endpoint, and statuses and the plan comment written
through the outbox and read back from it."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

from reconciler.config import ForgeConfig, RepoConfig
from reconciler.forge import OutboxWorker, PrCheckResult, PullRequestChecks, webhook_routes, webhook_targets
from reconciler.forge.statuses import GiteaClient
from reconciler.metrics import Metrics
from reconciler.server import HttpServer, build_app
from reconciler.statuses import CommitState
from reconciler.tracking import Store
from tests.infra.gitea_server import USER
from tests.infra.wait import wait_until

from .test_webhooks import Calls

_names = itertools.count(1)


def test_real_gitea_webhooks_statuses_and_comment(gitea_server: Any, store: Store, tmp_path: Path) -> None:
    name = f"forge-{next(_names)}-{tmp_path.name[-8:].lower().strip('_')}"
    gitea_server.create_repo(name)
    project = f"{USER}/{name}"
    secret_file = tmp_path / "secret"
    secret_file.write_text("real-gitea-secret")
    secret_file.chmod(0o600)
    repo = RepoConfig(
        name="models",
        url=f"{gitea_server.root_url}/{project}.git",
        forge=ForgeConfig(
            provider="gitea", project=project, api_url=gitea_server.api_url, webhook_secret_file=secret_file
        ),
    )
    calls = Calls()
    routes = webhook_routes(
        webhook_targets([repo]), on_push=calls.on_push, on_pull_request=calls.on_pull_request, deliveries=store
    )
    server = HttpServer(build_app(Metrics(), routes=routes), "127.0.0.1", 0)
    server.start()
    client = GiteaClient(project, gitea_server.token, gitea_server.api_url)
    try:
        hook = {
            "url": f"http://127.0.0.1:{server.port}/webhooks/gitea",
            "content_type": "json",
            "secret": "real-gitea-secret",
        }
        gitea_server.api(
            "POST",
            f"/repos/{project}/hooks",
            {"type": "gitea", "config": hook, "events": ["push", "pull_request"], "active": True},
        )
        gitea_server.api(
            "POST",
            f"/repos/{project}/contents/ops/a.yaml",
            {"content": "dmVyc2lvbjogMS4xCg==", "branch": "main", "message": "add op"},
        )
        head = gitea_server.head(name)
        wait_until(lambda: calls.pushes, timeout=30, what="gitea's push delivery accepted")
        assert calls.pushes == [("models", head)]

        pull = gitea_server.open_pull_request(name, "feature")
        wait_until(lambda: calls.pulls, timeout=30, what="gitea's pull request delivery accepted")
        (_, event), *_ = calls.pulls
        assert (event.action, event.number, event.head_sha) == ("opened", pull["number"], pull["head"]["sha"])
        # Listed from Gitea's own API, the open pull request reads as its webhook did.
        [listed] = client.open_pull_requests()
        assert (listed.number, listed.head_sha, listed.head_ref, listed.base_ref, listed.fork) == (
            event.number, event.head_sha, event.head_ref, event.base_ref, False
        )  # fmt: skip

        # The status of the PR head and the plan comment, through the outbox and the checker.
        checks = PullRequestChecks(
            store, {"models": client}, lambda r, h, b: PrCheckResult(False, "ops/train.yaml:3: bad", "+ create x")
        )
        store.ensure_repo("models", repo.url, "main", dt.datetime.now(dt.UTC))
        first = checks.handle("models", event).comment_id
        second = (
            PullRequestChecks(store, {"models": client}, lambda r, h, b: PrCheckResult(True, None, "+ create y"))
            .handle("models", event)
            .comment_id
        )
        assert first == second
        comments = client.list_comments(event.number)
        assert [c.id for c in comments] == [first] and "+ create y" in comments[0].body

        worker = OutboxWorker(store, {"models": client})
        assert worker.run_once(dt.datetime.now(dt.UTC)) == 1  # failure then success: coalesced to success
        found = client.list_statuses(event.head_sha)
        assert [(s.context, s.state) for s in found] == [("polyaxon/validate", CommitState.SUCCESS)]
    finally:
        client.close()
        server.stop()
