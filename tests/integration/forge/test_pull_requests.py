"""A pull request's whole life on the production daemon, end to end: the daemon started in process
(`reconciler.wiring.build_daemon`, workers, status observer, outbox worker, HTTP server), signed
webhooks sent to its own server -> the pull request's head fetched from `refs/pull/N/head` (GitLab:
`refs/merge-requests/N/head`) and checked by the daemon's one commit loader and planner ->
`polyaxon/validate` and preview statuses through the outbox to the local forge API server -> one
plan comment edited in place -> preview runs as real local processes, replaced on each push, stopped
and removed when the pull request is merged. SQLite and PostgreSQL, GitHub, GitLab and Gitea."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from reconciler.backends.local import LocalBackend
from reconciler.forge import PrCheckResult, PullRequestChecks, PullRequestEvent, preview_prefix
from reconciler.model import Cause
from reconciler.statuses import Status, is_done
from reconciler.tracking import Store
from tests.infra.daemon import DaemonHarness, daemon_harness
from tests.infra.git_server import GitRepoFactory
from tests.infra.wait import wait_until
from tests.infra.webhooks import WebhookSender

from .conftest import PROJECTS, make_client

REPO = "models"
DEADLINE = 30.0
T = TypeVar("T")


def op(name: str, command: str) -> str:
    return f"""version: 1.1
kind: operation
name: {name}
component:
  run:
    kind: job
    container:
      image: busybox
      command: [/bin/sh, -c, "{command}"]
"""


def forge_states(forge: Any, provider: str, sha: str) -> list[tuple[str, str]]:
    back = {"failed": "failure", "canceled": "error"}
    return [
        (
            s.get("context") or s.get("name"),
            back.get(s.get("state") or s.get("status"), s.get("state") or s.get("status")),
        )
        for s in forge.statuses(provider, PROJECTS[provider], sha)
    ]


def wait(condition: Callable[[], T | None], what: str) -> T:
    """Every wait of this test: conditions that usually hold in well under a second, with room
    for a loaded 2-core machine."""
    return wait_until(condition, timeout=DEADLINE, what=what)


def secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


@dataclass
class Forged:
    """The production daemon started in process for the repo `models` (base branch committed
    and applied), its forge the fake `provider` server, webhooks signed by `sender`."""

    h: DaemonHarness
    provider: Any
    sender: WebhookSender
    webhooks: str  # the daemon's own webhook URL for the provider
    base: str  # the base branch's commit

    def deliver(self, number: int, action: str, head: str, **kwargs: Any) -> None:
        _, response = self.sender.pull_request(
            self.provider,
            self.webhooks,
            repo=PROJECTS[self.provider],
            number=number,
            action=action,
            head_sha=head,
            base_sha=self.base,
            before=self.base,
            **kwargs,
        )
        assert response.status == 200, response.body

    def push_head(self, number: int, message: str, files: dict[str, str]) -> str:
        """A commit on the checked-out branch, published as pull request `number`'s head."""
        git = self.h.repos[REPO]
        sha = git.commit(message, files)
        git.push()
        git.open_pull_request(number, style="gitlab" if self.provider == "gitlab" else "github")
        return sha


@contextmanager
def forged_daemon(
    tmp_path: Path,
    db_url: str,
    git_repo_factory: GitRepoFactory,
    forge_server: Any,
    provider: Any,
    sender: WebhookSender,
    base_files: dict[str, str],
    forge_options: dict[str, Any] | None = None,
) -> Iterator[Forged]:
    """`forge_options`: more of the repo's `forge` settings."""
    assert sender.secret is not None
    forge = {
        "provider": provider,
        "project": PROJECTS[provider],
        "api_url": forge_server.url(provider),
        "token_file": str(secret_file(tmp_path / "forge-token", forge_server.tokens[provider])),
        "webhook_secret_file": str(secret_file(tmp_path / "webhook-secret", sender.secret)),
        **(forge_options or {}),
    }
    with daemon_harness(
        tmp_path,
        db_url,
        git_repo_factory,
        repos=(REPO,),
        backend="local",
        repo_options={REPO: {"forge": forge}},
        server={"host": "127.0.0.1", "port": 0, "public_url": "http://reconciler.test"},
    ) as h:
        base = h.commit(base_files, repo=REPO)
        webhooks = h.start() + f"/webhooks/{provider}"
        wait(
            lambda: (c := h.store.last_commit(REPO)) is not None and c.sha == base,
            what="the daemon applies the base branch",
        )
        yield Forged(h, provider, sender, webhooks, base)


def test_open_sync_close_lifecycle(
    db_url: str,
    forge_server: Any,
    provider: Any,
    webhook_sender: WebhookSender,
    git_repo_factory: GitRepoFactory,
    tmp_path: Path,
) -> None:
    # The base branch opts train (and a quick op a pull request may add) in for previews.
    base_files = {
        ".polyaxon-reconciler.yaml": "previews: [train, quick]\n",
        "ops/train.yaml": op("train", "sleep 300"),
        "ops/eval.yaml": op("eval", "true"),
    }
    with forged_daemon(
        tmp_path, db_url, git_repo_factory, forge_server, provider, webhook_sender, base_files
    ) as forged:
        h = forged.h
        git = h.repos[REPO]
        store = h.store
        backend = h.backend
        assert isinstance(backend, LocalBackend)

        def deliver(action: str, head: str, merged: bool = False) -> None:
            forged.deliver(7, action, head, merged=merged)

        def push_head(message: str, files: dict[str, str]) -> str:
            return forged.push_head(7, message, files)

        def comments() -> list[dict[str, Any]]:
            return forge_server.comments(provider, PROJECTS[provider], 7)

        def states(sha: str) -> list[tuple[str, str]]:
            return forge_states(forge_server, provider, sha)

        def posted(sha: str, context: str, state: str) -> bool:
            return (context, state) in states(sha)

        def preview_runs(head: str | None = None) -> list[Any]:
            return [r for r in store.preview_runs(REPO, 7) if head is None or r.commit_sha == head]

        def owned() -> set[str]:
            return {o.run for o in backend.list_owned()}

        # -- opened: valid, train changed and previewed, a quick op added and previewed too
        git.checkout("feature", create=True)
        head1 = push_head(
            "change train",
            {"ops/train.yaml": op("train", "sleep 301"), "ops/quick.yaml": op("quick", "echo ok")},
        )
        deliver("opened", head1)
        wait(lambda: posted(head1, "polyaxon/validate", "success"), what="validate success")
        (first,) = wait(comments, what="the plan comment")
        assert f"+ create {REPO}:ops/train.yaml#train (job)" in first["body"]
        assert f"+ create {REPO}:ops/quick.yaml#quick (job)" in first["body"]
        assert "ops/eval.yaml" not in first["body"]  # unchanged
        runs1 = wait(lambda: len(preview_runs(head1)) == 2 and preview_runs(head1), what="previews")
        assert sorted(r.name.split("-")[2] for r in runs1) == ["quick", "train"]
        assert all(r.name.startswith(preview_prefix(7)) and r.cause == Cause.PREVIEW for r in runs1)
        wait(lambda: {r.name for r in runs1} <= owned(), what="previews submitted to the backend")
        # The quick preview finishes; its status reaches the pull request's head.
        quick = next(r.name for r in runs1 if "-quick-" in r.name)
        wait(lambda: store.run(quick).status == Status.SUCCEEDED, what="quick succeeds")  # type: ignore[union-attr]
        wait(lambda: posted(head1, "polyaxon/quick", "success"), what="quick's status")
        wait(lambda: posted(head1, "polyaxon/train", "pending"), what="train's first status")

        # -- synchronize with a broken file: failure with path:line, comment edited, previews retired
        head2 = push_head("break eval", {"ops/eval.yaml": "version: 1.1\nkind: operation\ncomponent: [\n"})
        deliver("synchronize", head2)
        wait(lambda: posted(head2, "polyaxon/validate", "failure"), what="validate failure")
        assert [s for c, s in states(head2) if c == "polyaxon/validate"] == ["failure"]
        description = next(s.get("description") for s in forge_server.statuses(provider, PROJECTS[provider], head2))
        assert description.startswith("ops/eval.yaml:")
        (second,) = wait(lambda: [c for c in comments() if "Invalid" in c["body"]], what="comment edited")
        assert second["id"] == first["id"] and len(comments()) == 1
        train1 = next(r.name for r in runs1 if "-train-" in r.name)
        assert store.run(train1).status == Status.STOPPED  # type: ignore[union-attr]
        assert train1 not in owned()
        wait(lambda: posted(head1, "polyaxon/train", "error"), what="train1's end posted")

        # -- synchronize with a fix: valid again, new previews for the new head
        head3 = push_head("fix eval", {"ops/eval.yaml": op("eval", "true")})
        deliver("synchronize", head3)
        wait(lambda: posted(head3, "polyaxon/validate", "success"), what="valid again")
        (third,) = wait(
            lambda: [c for c in comments() if "Valid" in c["body"] and head3[:12] in c["body"]],
            what="comment edited again",
        )
        assert third["id"] == first["id"] and len(comments()) == 1
        runs3 = wait(lambda: len(preview_runs(head3)) == 2 and preview_runs(head3), what="new previews")
        train3 = next(r.name for r in runs3 if "-train-" in r.name)
        wait(lambda: train3 in owned(), what="train preview submitted")
        wait(lambda: posted(head3, "polyaxon/train", "pending"), what="train3 pending")

        # -- merged: every preview stopped and removed, statuses say why
        deliver("closed", head3, merged=True)
        wait(
            lambda: store.run(train3).status == Status.STOPPED,  # type: ignore[union-attr]
            what="train3 stopped",
        )
        wait(
            lambda: not [o for o in owned() if o.startswith(preview_prefix(7))],
            what="previews removed from the backend",
        )
        wait(lambda: posted(head3, "polyaxon/train", "error"), what="train3's end posted")
        # Pending while it lived (once per status it passed through), then error, saying why.
        train_states = [s for c, s in states(head3) if c == "polyaxon/train"]
        assert set(train_states[:-1]) == {"pending"} and train_states[-1] == "error"
        last = [
            s
            for s in forge_server.statuses(provider, PROJECTS[provider], head3)
            if (s.get("context") or s.get("name")) == "polyaxon/train"
        ][-1]
        assert "PullRequestClosed" in last["description"]
        assert len(comments()) == 1
        wait(
            lambda: all(r.posted_at is not None or r.superseded_at is not None for r in store.outbox()),
            what="the outbox drained",
        )
        # The base branch's own runs are not the pull request's: its train still runs.
        [main_train] = [r for r in store.runs_by_op(f"{REPO}:ops/train.yaml#train") if r.cause == Cause.COMMIT]
        assert main_train.name in owned() and not is_done(main_train.status)


def test_comment_deleted_by_someone_is_written_again(store: Store, forge_server: Any, provider: Any) -> None:
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
    db_url: str,
    forge_server: Any,
    provider: Any,
    webhook_sender: WebhookSender,
    git_repo_factory: GitRepoFactory,
    tmp_path: Path,
) -> None:
    """A pull request that rewrites `previews`, tags its ops `preview` or adds new ops runs only
    what the base branch listed; one from a fork runs nothing; with a required label, previews
    wait for the label a maintainer sets on the forge (the event's own label counts for nothing)."""
    base_files = {
        ".polyaxon-reconciler.yaml": "previews: [smoke]\npreviews_require_label: ok-to-test\n",
        "ops/smoke.yaml": op("smoke", "sleep 300"),
    }
    with forged_daemon(
        tmp_path, db_url, git_repo_factory, forge_server, provider, webhook_sender, base_files
    ) as forged:
        store = forged.h.store
        project = PROJECTS[provider]

        def ran(number: int) -> list[str]:
            return sorted(r.name.split("-")[2] for r in store.preview_runs(REPO, number))

        def comment(number: int, containing: str) -> str:
            def found() -> str | None:
                bodies = [str(c["body"]) for c in forge_server.comments(provider, project, number)]
                assert len(bodies) <= 1, "one comment per pull request"
                return next((b for b in bodies if containing in b), None)

            return wait(found, what=f"pull request {number}'s comment saying {containing!r}")

        forged.h.repos[REPO].checkout("greedy", create=True)
        greedy = forged.push_head(
            1,
            "opt everything in",
            {
                ".polyaxon-reconciler.yaml": 'previews: ["*"]\npreviews_from_forks: true\n',
                "ops/smoke.yaml": op("smoke", "sleep 301"),
                "ops/evil.yaml": op("evil", "id; env").replace("name: evil\n", "name: evil\ntags: [preview]\n"),
            },
        )
        forge_server.add_pull_request(provider, project, 1, head_sha=greedy, base_sha=forged.base)
        # The event says "labeled", and even carries the label: the forge's API does not have it.
        forged.deliver(1, "labeled", greedy)
        comment(1, "waiting for a maintainer to add the label `ok-to-test`")
        assert ran(1) == []
        # A maintainer labels it: the next check (the forge's label event) runs the base's list only.
        forge_server.set_labels(provider, project, 1, ["ok-to-test"])
        forged.deliver(1, "labeled", greedy)
        comment(1, "pr-1-smoke-")
        assert ran(1) == ["smoke"]

        # The same head from a fork, labelled too: nothing runs (previews_from_forks is the base's).
        forged.h.repos[REPO].open_pull_request(2, style="gitlab" if provider == "gitlab" else "github")
        forge_server.add_pull_request(provider, project, 2, head_sha=greedy, labels=["ok-to-test"])
        forged.deliver(2, "opened", greedy, fork="mallory/models")
        comment(2, "pull request from a fork")
        assert ran(2) == []
        # Validated all the same.
        wait(
            lambda: ("polyaxon/validate", "success") in forge_states(forge_server, provider, greedy),
            what="validate success on the head",
        )
