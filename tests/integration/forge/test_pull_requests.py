"""A pull request's whole life, end to end: signed webhooks over HTTP -> checks compiled from a
real git repo -> `polyaxon/validate` and preview statuses through the outbox to the local forge
API server -> one plan comment edited in place -> preview runs as real local processes, replaced
on each push and stopped and removed when the pull request is merged. SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reconciler.forge.queries import preview_runs

from reconciler.backends.local import LocalBackend
from reconciler.config import ForgeConfig, RepoConfig
from reconciler.forge import (
    Links,
    OutboxWorker,
    PreviewManager,
    PullRequestChecks,
    preview_prefix,
    transition_and_report,
    webhook_routes,
    webhook_targets,
)
from reconciler.metrics import Metrics
from reconciler.model import Cause, OpKey
from reconciler.server import HttpServer, build_app
from reconciler.statuses import Status
from reconciler.tracking import IllegalTransition, Store
from tests.infra.git_server import GitRepoFactory
from tests.infra.wait import wait_until
from tests.infra.webhooks import WebhookSender

from .conftest import PROJECTS, make_client
from .prcheck import checker

REPO = "models"
SECRET = "webhook-secret"


def op(name: str, command: str, *, tags: str = "") -> str:
    return f"""version: 1.1
kind: operation
name: {name}
{tags}
component:
  run:
    kind: job
    container:
      image: busybox
      command: [/bin/sh, -c, "{command}"]
"""


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    b = LocalBackend(tmp_path / "local", interval=0.05, stop_grace=2.0)
    try:
        yield b
    finally:
        b.close()
        sweeper = LocalBackend(tmp_path / "local", supervise=False)
        for owned in sweeper.list_owned():
            sweeper.delete(owned.run)
        sweeper.close()


def pump(backend: LocalBackend, store: Store, links: Links) -> None:
    """What the daemon's status observer does: each observed transition -> DB + commit status."""
    for t in backend.observe(timeout=0.05):
        run = store.run(t.run)
        if run is None:
            continue
        with store.unit_of_work() as s:
            from reconciler.forge.queries import op_key_of

            name = OpKey.parse(op_key_of(store, run, session=s)).name
        # A late observation of a run already closed (a retired preview) is stale: skip it.
        with contextlib.suppress(IllegalTransition):
            transition_and_report(
                store, repo=REPO, run_name=t.run, op_name=name, status=Status(t.status), at=t.at, links=links
            )


def forge_states(forge: Any, provider: str, sha: str) -> list[tuple[str, str]]:
    back = {"failed": "failure", "canceled": "error"}
    return [
        (
            s.get("context") or s.get("name"),
            back.get(s.get("state") or s.get("status"), s.get("state") or s.get("status")),
        )
        for s in forge.statuses(provider, PROJECTS[provider], sha)
    ]


def test_open_sync_close_lifecycle(
    store: Store,
    forge_server: Any,
    provider: Any,
    backend: LocalBackend,
    git_repo_factory: GitRepoFactory,
    tmp_path: Path,
) -> None:
    now = dt.datetime.now(dt.UTC)
    git = git_repo_factory.create(
        "models",
        {
            # The base branch opts train (and a quick op a pull request may add) in for previews.
            ".polyaxon-reconciler.yaml": "previews: [train, quick]\n",
            "ops/train.yaml": op("train", "sleep 300"),
            "ops/eval.yaml": op("eval", "true"),
        },
    )
    base = git.head()
    store.ensure_repo(REPO, git.file_url, "main", now)
    links = Links("http://reconciler.test")
    client = make_client(forge_server, provider)
    worker = OutboxWorker(store, {REPO: client})
    previews = PreviewManager(store, backend, links=links)
    checks = PullRequestChecks(store, {REPO: client}, checker(git), previews=previews, links=links)
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    repo_config = RepoConfig(
        name=REPO,
        url=git.file_url,
        forge=ForgeConfig(provider=provider, project=PROJECTS[provider], webhook_secret_file=secret_file),
    )
    routes = webhook_routes(
        webhook_targets([repo_config]),
        on_push=lambda repo, sha: None,
        on_pull_request=checks.handle,
        deliveries=store,
    )
    server = HttpServer(build_app(Metrics(), routes=routes), "127.0.0.1", 0)
    server.start()
    sender = WebhookSender(SECRET)
    url = f"http://127.0.0.1:{server.port}/webhooks/{provider}"

    def deliver(action: str, head: str, merged: bool = False) -> None:
        _, response = sender.pull_request(
            provider,
            url,
            repo=PROJECTS[provider],
            number=7,
            action=action,
            head_sha=head,
            base_sha=base,
            before=base,
            merged=merged,
        )
        assert response.status == 200, response.body
        worker.run_once(dt.datetime.now(dt.UTC))

    def comments() -> list[dict[str, Any]]:
        return forge_server.comments(provider, PROJECTS[provider], 7)

    try:
        # -- opened: valid, train changed and previewed, a quick op added and previewed too
        git.checkout("feature", create=True)
        head1 = git.commit(
            "change train",
            {
                "ops/train.yaml": op("train", "sleep 301"),
                "ops/quick.yaml": op("quick", "echo ok"),
            },
        )
        deliver("opened", head1)
        assert ("polyaxon/validate", "success") in forge_states(forge_server, provider, head1)
        (first,) = comments()
        assert "~ update ops/train.yaml" in first["body"] and "+ create ops/quick.yaml" in first["body"]
        runs1 = preview_runs(store, REPO, 7)
        assert sorted(r.name.split("-")[2] for r in runs1) == ["quick", "train"]
        assert all(r.name.startswith(preview_prefix(7)) and r.cause == Cause.PREVIEW for r in runs1)
        assert all(r.commit_sha == head1 for r in runs1)
        owned = {o.run for o in backend.list_owned()}
        assert {r.name for r in runs1} <= owned
        # The quick preview finishes; its status reaches the pull request's head.
        quick = next(r.name for r in runs1 if "-quick-" in r.name)

        def quick_done() -> bool:
            pump(backend, store, links)
            run = store.run(quick)
            return run is not None and run.status == Status.SUCCEEDED

        wait_until(quick_done, timeout=30, what="the quick preview to succeed")
        worker.run_once(dt.datetime.now(dt.UTC))
        assert ("polyaxon/quick", "success") in forge_states(forge_server, provider, head1)
        assert ("polyaxon/train", "pending") in forge_states(forge_server, provider, head1)

        # -- synchronize with a broken file: failure with path:line, comment edited, previews retired
        head2 = git.commit("break eval", {"ops/eval.yaml": "version: 1.1\nkind: operation\ncomponent: [\n"})
        deliver("synchronize", head2)
        states2 = forge_states(forge_server, provider, head2)
        assert [s for c, s in states2 if c == "polyaxon/validate"] == ["failure"]
        description = next(s.get("description") for s in forge_server.statuses(provider, PROJECTS[provider], head2))
        assert description.startswith("ops/eval.yaml:")
        (second,) = comments()
        assert second["id"] == first["id"] and "Invalid" in second["body"]
        train1 = next(r.name for r in runs1 if "-train-" in r.name)
        assert store.run(train1).status == Status.STOPPED  # type: ignore[union-attr]
        assert train1 not in {o.run for o in backend.list_owned()}
        assert ("polyaxon/train", "error") in forge_states(forge_server, provider, head1)

        # -- synchronize with a fix: valid again, new previews for the new head
        head3 = git.commit("fix eval", {"ops/eval.yaml": op("eval", "true")})
        deliver("synchronize", head3)
        assert ("polyaxon/validate", "success") in forge_states(forge_server, provider, head3)
        (third,) = comments()
        assert third["id"] == first["id"] and "Valid" in third["body"]
        runs3 = [r for r in preview_runs(store, REPO, 7) if r.commit_sha == head3]
        assert len(runs3) == 2
        train3 = next(r.name for r in runs3 if "-train-" in r.name)
        wait_until(lambda: train3 in {o.run for o in backend.list_owned()}, what="train preview submitted")

        # -- merged: every preview stopped and removed, statuses say why
        deliver("closed", head3, merged=True)
        assert store.run(train3).status == Status.STOPPED  # type: ignore[union-attr]
        assert not [o for o in backend.list_owned() if o.run.startswith(preview_prefix(7))]
        train_head3 = [s for c, s in forge_states(forge_server, provider, head3) if c == "polyaxon/train"]
        assert train_head3 == ["pending", "error"]
        assert len(comments()) == 1
        assert all(r.posted_at is not None or r.superseded_at is not None for r in store.outbox())
    finally:
        server.stop()
        client.close()


def test_comment_deleted_by_someone_is_written_again(store: Store, forge_server: Any, provider: Any) -> None:
    from reconciler.forge import PrCheckResult, PullRequestEvent

    client = make_client(forge_server, provider)
    checks = PullRequestChecks(store, {REPO: client}, lambda r, h, b: PrCheckResult(True, None, "+ create a"))
    store.ensure_repo(REPO, "file:///x", "main", dt.datetime.now(dt.UTC))
    event = PullRequestEvent(provider, (PROJECTS[provider],), 3, "opened", "d" * 40, "f", "main")
    try:
        first = checks.handle(REPO, event).comment_id
        # A restart forgets the cached id: the marker finds the same comment again.
        fresh = PullRequestChecks(store, {REPO: client}, lambda r, h, b: PrCheckResult(True, None, "~ update a"))
        assert fresh.handle(REPO, event).comment_id == first
        assert len(forge_server.comments(provider, PROJECTS[provider], 3)) == 1
    finally:
        client.close()


def test_only_the_base_branch_opts_previews_in(
    store: Store,
    forge_server: Any,
    provider: Any,
    backend: LocalBackend,
    git_repo_factory: GitRepoFactory,
    tmp_path: Path,
) -> None:
    """A pull request that rewrites `previews`, tags its ops `preview` or adds new ops runs only
    what the base branch listed; one from a fork runs nothing; with a required label, previews
    wait for the label a maintainer sets on the forge (the event's own label counts for nothing)."""
    now = dt.datetime.now(dt.UTC)
    git = git_repo_factory.create(
        "models",
        {
            ".polyaxon-reconciler.yaml": "previews: [smoke]\npreviews_require_label: ok-to-test\n",
            "ops/smoke.yaml": op("smoke", "sleep 300"),
        },
    )
    base = git.head()
    store.ensure_repo(REPO, git.file_url, "main", now)
    client = make_client(forge_server, provider)
    checks = PullRequestChecks(store, {REPO: client}, checker(git), previews=PreviewManager(store, backend))
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    forge = ForgeConfig(provider=provider, project=PROJECTS[provider], webhook_secret_file=secret_file)
    routes = webhook_routes(
        webhook_targets([RepoConfig(name=REPO, url=git.file_url, forge=forge)]),
        on_push=lambda repo, sha: None,
        on_pull_request=checks.handle,
        deliveries=store,
    )
    server = HttpServer(build_app(Metrics(), routes=routes), "127.0.0.1", 0)
    server.start()
    sender = WebhookSender(SECRET)
    url = f"http://127.0.0.1:{server.port}/webhooks/{provider}"

    def deliver(number: int, action: str, head: str, fork: str | None = None) -> None:
        _, response = sender.pull_request(
            provider, url, repo=PROJECTS[provider], number=number, action=action, head_sha=head,
            base_sha=base, before=base, fork=fork,
        )  # fmt: skip
        assert response.status == 200, response.body

    def ran(number: int) -> list[str]:
        return sorted(r.name.split("-")[2] for r in preview_runs(store, REPO, number))

    def comment(number: int) -> str:
        (found,) = forge_server.comments(provider, PROJECTS[provider], number)
        return str(found["body"])

    try:
        git.checkout("greedy", create=True)
        greedy = git.commit(
            "opt everything in",
            {
                ".polyaxon-reconciler.yaml": 'previews: ["*"]\npreviews_from_forks: true\n',
                "ops/smoke.yaml": op("smoke", "sleep 301"),
                "ops/evil.yaml": op("evil", "id; env", tags="tags: [preview]"),
            },
        )
        forge_server.add_pull_request(provider, PROJECTS[provider], 1, head_sha=greedy, base_sha=base)
        # The event says "labeled", and even carries the label: the forge's API does not have it.
        deliver(1, "labeled", greedy)
        assert ran(1) == []
        assert "waiting for a maintainer to add the label `ok-to-test`" in comment(1)
        # A maintainer labels it: the next check (the forge's label event) runs the base's list only.
        forge_server.set_labels(provider, PROJECTS[provider], 1, ["ok-to-test"])
        deliver(1, "labeled", greedy)
        assert ran(1) == ["smoke"]
        assert "pr-1-smoke-" in comment(1)

        # The same head from a fork, labelled too: nothing runs (previews_from_forks is the base's).
        forge_server.add_pull_request(provider, PROJECTS[provider], 2, head_sha=greedy, labels=["ok-to-test"])
        deliver(2, "opened", greedy, fork="mallory/models")
        assert ran(2) == []
        assert "pull request from a fork" in comment(2)
        OutboxWorker(store, {REPO: client}).run_once(dt.datetime.now(dt.UTC))
        assert ("polyaxon/validate", "success") in forge_states(
            forge_server, provider, greedy
        )  # validated all the same
    finally:
        server.stop()
        client.close()
