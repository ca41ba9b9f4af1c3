"""Replicas of the production daemon, in process, sharing two repos over PostgreSQL.

What reaches a replica that does not own the repo: a verified push webhook is handed to the owner
(which reconciles within the second, without polling); an unverified one is refused (401) and
hands nothing to anyone; a pull-request event crosses over intact; a hand-off row nobody can read
is dropped without stopping the others. A replica that owns nothing is ready (/readyz 200).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import ShardingConfig
from reconciler.daemon import Daemon, ReconcileRepo
from reconciler.forge import PullRequestEvent
from reconciler.shard_wiring import Delivery
from reconciler.sharding import NotOwner
from reconciler.tracking import Store
from tests.e2e.harness import http, metric
from tests.infra.daemon import DaemonHarness
from tests.infra.git_server import GitRepoFactory
from tests.infra.wait import wait_until
from tests.infra.webhooks import WebhookSender

pytestmark = pytest.mark.postgres

SECRET = "in-process-secret"
# Rendezvous over these names: "two" owns a, "one" owns b, "three" owns nothing.
OWNERS = {"a": "two", "b": "one"}
JOB = """
version: 1.1
kind: operation
name: train
component:
  run: {kind: job, container: {image: busybox, command: [echo, "VERSION"]}}
"""


@pytest.fixture
def replicas(pg_url: str, git_repo_factory: GitRepoFactory, tmp_path: Path) -> Iterator[dict[str, Daemon]]:
    secret = tmp_path / "webhook-secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    forge = {"a": {"forge": {"provider": "github", "project": "acme/a", "webhook_secret_file": str(secret)}}}
    forge["b"] = {"forge": {"provider": "github", "project": "acme/b", "webhook_secret_file": str(secret)}}
    with ExitStack() as stack:
        harness = DaemonHarness(tmp_path / "h", pg_url, git_repo_factory, repos=("a", "b"), repo_options=forge)
        stack.callback(harness.close)
        for repo in ("a", "b"):
            harness.commit({"ops/train.yaml": JOB.replace("VERSION", "v1")}, repo=repo)
        made: dict[str, Daemon] = {}
        for name in ("one", "two", "three"):
            settings = harness.settings.model_copy(
                update={
                    "backend": "kubernetes",
                    "sharding": ShardingConfig(mode="database", lease_seconds=3, identity=name),
                    "data_dir": tmp_path / name,
                }
            )
            daemon = harness.build(store=harness.open_store(), settings=settings, timer=False)
            daemon.start(workers=2, serve=True)
            stack.callback(daemon.stop, 10.0)
            made[name] = daemon
        for repo, owner in OWNERS.items():
            wait_until(lambda r=repo, o=owner: made[o].owns(r), timeout=30, what=f"{owner} to own {repo}")
        yield made


def reconciles(daemon: Daemon, repo: str) -> float:
    return sum(
        metric(daemon.metrics.exposition().decode(), "reconciler_reconcile_total", repo=repo, result=result)
        for result in ("success", "error", "invalid")
    )


def test_a_push_to_a_replica_that_does_not_own_the_repo_reaches_the_owner(
    replicas: dict[str, Daemon], pg_url: str
) -> None:
    owner, stranger = replicas["two"], replicas["three"]
    assert not stranger.owns("a")
    # Polls are an hour apart: only the webhook can make the owner reconcile now.
    owner_before = reconciles(owner, "a")
    sent = time.monotonic()
    _, answer = WebhookSender(SECRET).push(
        "github", f"{stranger.address}/webhooks/github", repo="acme/a", ref="refs/heads/main", before="0" * 40,
        after="1" * 40,
    )  # fmt: skip
    assert answer.status == 200, answer
    wait_until(lambda: reconciles(owner, "a") > owner_before, timeout=10, what="the owner to reconcile a")
    took = time.monotonic() - sent
    assert reconciles(stranger, "a") == 0  # the stranger never reconciles a repo it does not own
    print(f"hand-off: webhook answered to the owner's reconcile done in {took:.3f}s")


def test_an_unverified_webhook_to_a_non_owner_hands_nothing_over(replicas: dict[str, Daemon], pg_url: str) -> None:
    stranger = replicas["three"]
    owner_before = reconciles(replicas["two"], "a")
    _, answer = WebhookSender("not-the-secret").push(
        "github", f"{stranger.address}/webhooks/github", repo="acme/a", ref="refs/heads/main", before="0" * 40,
        after="2" * 40,
    )  # fmt: skip
    assert answer.status == 401
    store = Store.open(pg_url)
    try:
        assert store.take_handoffs(["a", "b"]) == []
    finally:
        store.close()
    assert reconciles(replicas["two"], "a") == owner_before


def test_a_replica_that_owns_nothing_is_ready(replicas: dict[str, Daemon]) -> None:
    idle = replicas["three"]
    assert not idle.owns("a") and not idle.owns("b")
    answer = http(f"{idle.address}/readyz")
    assert answer is not None and answer[0] == 200, answer
    exposed = idle.metrics.exposition().decode()
    assert metric(exposed, "reconciler_repo_owned", repo="a") == 0
    assert "reconciler_shard_members 3.0" in exposed
    # The owner's gauge follows its lease within a round (published as the lease is taken).
    owner = replicas["two"]
    wait_until(
        lambda: owner.owns("a") and metric(owner.metrics.exposition().decode(), "reconciler_repo_owned", repo="a") == 1,
        timeout=10,
        what="the owner's reconciler_repo_owned{repo=a} to read 1",
    )


def test_a_pull_request_event_crosses_over_intact_and_a_bad_row_is_dropped(
    replicas: dict[str, Daemon], pg_url: str
) -> None:
    owner = replicas["one"]  # owns b
    assert owner.sharding is not None
    got: list[tuple[str, Any]] = []
    owner.sharding.bind(
        Delivery(push=lambda repo: None, pull_request=lambda repo, e: got.append((repo, e)), retry=lambda run: None),
        on_acquired=lambda repos: None,
        busy=owner._idle,
    )
    event = PullRequestEvent(
        provider="github", projects=("acme/b",), number=7, action="opened", head_sha="c" * 40,
        head_ref="feature", base_ref="main", base_sha="d" * 40, title="Change", fork=False,
    )  # fmt: skip
    stranger = replicas["three"]
    assert stranger.sharding is not None
    store = Store.open(pg_url)
    try:
        store.hand_off("b", "pull_request", {"number": "not a dict of fields"}, "mallory", datetime.now(UTC))
        store.hand_off("b", "no-such-kind", {}, "mallory", datetime.now(UTC))
    finally:
        store.close()
    stranger.sharding.hand_off_pull_request("b", event)
    wait_until(lambda: got, timeout=10, what="the owner to receive the pull request")
    assert got == [("b", event)]
    assert json.dumps(got[0][1].projects) == '["acme/b"]'


TICKING = """
version: 1.1
kind: operation
name: tick
schedule: {kind: interval, frequency: 60}
component:
  run: {kind: job, container: {image: busybox, command: [echo, tick]}}
"""


def test_ticks_resume_and_reconciles_of_a_repo_are_its_owner_s_alone(
    pg_url: str, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    """Two replicas stepped by hand (no threads): the one that does not own `a` neither
    reconciles it, nor fires its due tick, nor starts a run of it left unsubmitted; the owner does."""
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    with ExitStack() as stack:
        harness = DaemonHarness(tmp_path / "h", pg_url, git_repo_factory, repos=("a", "b"), start=t0)
        stack.callback(harness.close)
        harness.commit({"ops/tick.yaml": TICKING}, repo="a")
        made = {}
        for name in ("one", "two"):
            settings = harness.settings.model_copy(
                update={
                    "backend": "kubernetes",
                    "sharding": ShardingConfig(mode="database", lease_seconds=3, identity=name),
                    "data_dir": tmp_path / name,
                }
            )
            made[name] = harness.build(store=harness.open_store(), settings=settings, timer=False)
        shards = [d.sharding.shard for d in made.values() if d.sharding is not None]
        stack.callback(lambda: [s.stop(leave=True) for s in shards])
        wait_until(
            lambda: [s.step() for s in shards] and made["two"].owns("a") and made["one"].owns("b"),
            timeout=30,
            what="a owned by two, b by one",
        )
        owner, stranger = made["two"], made["one"]
        # The queue's item for another replica's repo does nothing; a direct reconcile is fenced.
        assert stranger._handle_reconcile(ReconcileRepo("a")) is None
        with pytest.raises(NotOwner):
            stranger.reconcile_repo("a")
        assert harness.store.operation("a:ops/tick.yaml#tick") is None
        harness.clock.set(t0)
        owner.reconcile_repo("a")
        assert harness.store.schedule_state("a:ops/tick.yaml#tick") is not None
        # The tick falls due: the stranger fires nothing, the owner fires it, once. Its submission
        # fails (a crash between record and start): the run waits, recorded, for a resume.
        harness.clock.set(t0 + timedelta(seconds=61))
        stranger.fire_ticks()
        assert harness.store.ticks("a:ops/tick.yaml#tick") == []
        harness.scripted.fail_next_submit(RuntimeError("crashed before the submit"))
        with contextlib.suppress(RuntimeError):
            owner.fire_ticks()
        [tick] = harness.store.ticks("a:ops/tick.yaml#tick")
        assert tick.outcome == "fired" and harness.submitted == []
        stranger.resume()
        assert harness.submitted == []  # not its repo: left to the owner
        owner.resume()
        assert [r.op.name for r in harness.submitted] == ["tick"]
