"""The outbox per forge, against the local forge API server, on SQLite and PostgreSQL: a forge
that is down for minutes gets every latest status within 30 s of coming back (its backoff is the
forge's, reset by its first answer); a status the forge fails on alone backs off alone; a slow
forge never delays a healthy one (one lane each); two daemons on one database post each status
once; what waits is measured per forge."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from typing import Any

import pytest

from reconciler.forge import OutboxWorker
from reconciler.forge.statuses import ForgeClient
from reconciler.metrics import Metrics
from reconciler.statuses import CommitState
from reconciler.tracking import Store
from tests.infra.wait import wait_until

from .conftest import PROJECTS, T0, make_client

S = dt.timedelta(seconds=1)
REPO = "models"
PENDING, SUCCESS, FAILURE = CommitState.PENDING, CommitState.SUCCESS, CommitState.FAILURE
BACK = {"failed": "failure", "canceled": "error"}


def enqueue(store: Store, sha: str, context: str, state: CommitState, now: dt.datetime, repo: str = REPO) -> bool:
    return store.enqueue_commit_status(
        repo=repo, sha=sha, context=context, state=state, now=now, description=f"{context} {state}"
    )


def sha_of(name: str) -> str:
    return name.encode().hex().ljust(40, "0")


def latest_on_forge(forge: Any, provider: str, sha: str, project: str | None = None) -> dict[str, CommitState]:
    """The state each context ends on for `sha` on the forge (the newest status of each)."""
    latest: dict[str, CommitState] = {}
    for s in forge.statuses(provider, project or PROJECTS[provider], sha):  # oldest first
        state = s.get("state") or s.get("status")
        latest[s.get("context") or s.get("name")] = CommitState(BACK.get(state, state))
    return latest


def all_on_forge(forge: Any, provider: str, expected: dict[tuple[str, str], CommitState], **kw: Any) -> bool:
    shas = {sha for sha, _ in expected}
    got = {(sha, c): state for sha in shas for c, state in latest_on_forge(forge, provider, sha, **kw).items()}
    return all(got.get(key) == state for key, state in expected.items())


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# What lands while the forge is down, by second since T0: (commit, context, state). Commit c2's
# validate goes pending then success, its train job pending then success, c3's train fails, ...
LANDINGS: dict[int, list[tuple[str, str, CommitState]]] = {
    10: [("c2", "polyaxon/validate", PENDING)],
    11: [("c2", "polyaxon/validate", SUCCESS), ("c2", "polyaxon/train", PENDING)],
    60: [("c2", "polyaxon/train", SUCCESS)],
    100: [("c3", "polyaxon/validate", SUCCESS), ("c3", "polyaxon/train", PENDING), ("c3", "polyaxon/eval", PENDING)],
    150: [("c3", "polyaxon/train", FAILURE)],
    175: [("c3", "polyaxon/eval", SUCCESS), ("c4", "polyaxon/validate", SUCCESS)],
}
OUTAGE = 180  # seconds


@pytest.mark.parametrize("outage", ["refused", "5xx"])
def test_forge_down_three_minutes_every_latest_status_within_30s_of_recovery(
    store: Store, forge_server: Any, provider: Any, outage: str
) -> None:
    """The issue's case, on an injected clock stepped a second at a time as the daemon's loop
    polls: before, each row backed off alone (2 s doubling), and the last statuses came 122 s
    after the forge did."""
    metrics = Metrics()
    client = make_client(forge_server, provider)
    worker = OutboxWorker(store, {REPO: client}, metrics=metrics)  # the daemon's settings
    try:
        enqueue(store, sha_of("c1"), "polyaxon/validate", SUCCESS, T0)
        assert worker.run_once(T0) == 1
        if outage == "refused":
            forge_server.stop()
        else:
            forge_server.fail_next(10**6, status=502, provider=provider)
        expected: dict[tuple[str, str], CommitState] = {}
        now = T0
        for second in range(1, OUTAGE + 1):
            now = T0 + second * S
            for commit, context, state in LANDINGS.get(second, []):
                enqueue(store, sha_of(commit), context, state, now)
                expected[(sha_of(commit), context)] = state
            assert worker.run_once(now) == 0
        # What waits, as /metrics shows it: the 6 latest states (the pending states they replaced
        # are retired), the oldest queued 169 s ago (c2's validate success, at second 11).
        [backlog] = worker.gauge(now)
        assert (backlog.forge, backlog.pending) == (client.forge, 6)
        assert metric(metrics, "reconciler_outbox_pending", forge=client.forge) == 6
        assert metric(metrics, "reconciler_outbox_oldest_pending_seconds", forge=client.forge) == 169
        kind = "unreachable" if outage == "refused" else "transient"
        tries = metric(metrics, "reconciler_forge_post_errors_total", forge=client.forge, kind=kind)
        # One try at a time for the whole forge, at most every 10 s: not one per row per step.
        assert 5 <= tries <= OUTAGE / 10 + 5, tries

        recovered = now + S
        if outage == "refused":
            forge_server.start()
        else:
            forge_server.clear_injections()
        now = recovered
        while not all_on_forge(forge_server, provider, expected):
            assert now - recovered <= dt.timedelta(seconds=60), "the backlog did not drain"
            worker.run_once(now)
            now += S
        delivered = now - S - recovered
        print(f"\n{provider} {outage}: every latest status on the forge {delivered.total_seconds():.0f} s after")
        assert delivered <= dt.timedelta(seconds=30)
    finally:
        worker.close()
        client.close()
    # Each latest state once; nothing older posted after the outage.
    posted = [
        (r.path, (r.json or {}).get("context") or (r.json or {}).get("name"), (r.json or {}).get("state"))
        for r in forge_server.requests(provider, "POST")
        if r.status == 201
    ]
    assert len(posted) == 1 + len(expected) and max(Counter(posted).values()) == 1, posted
    rows = [r for r in store.outbox() if r.posted_at is not None]
    if outage == "refused":
        # Nothing was ever sent before the post that landed: no attempt counted, nothing to check.
        assert all(r.attempts == 1 for r in rows), [(r.context, r.attempts) for r in rows]
        assert forge_server.requests(provider, "GET") == []
    assert worker.gauge(now)[0].pending == 0
    assert metric(metrics, "reconciler_outbox_oldest_pending_seconds", forge=client.forge) == 0
    assert metric(metrics, "reconciler_forge_posts_total", forge=client.forge) == 1 + len(expected)


def test_a_status_the_forge_fails_on_alone_backs_off_alone(store: Store, forge_server: Any, provider: Any) -> None:
    """One commit's statuses always get a 500 while the forge answers the others: that status
    never makes the forge count as down; the others wait at most the moment after a failure."""
    bad = sha_of("bad")
    forge_server.fail_next(10**6, status=500, provider=provider, path=bad)
    client = make_client(forge_server, provider)
    worker = OutboxWorker(store, {REPO: client})
    queued: dict[str, dt.datetime] = {}
    delays: list[dt.timedelta] = []
    try:
        enqueue(store, bad, "polyaxon/train", SUCCESS, T0)
        for second in range(0, 600):
            now = T0 + second * S
            if second % 20 == 0:
                sha = sha_of(f"good{second}")
                enqueue(store, sha, "polyaxon/train", SUCCESS, now)
                queued[sha] = now
            worker.run_once(now)
            for sha, at in list(queued.items()):
                if latest_on_forge(forge_server, provider, sha):
                    delays.append(now - at)
                    del queued[sha]
    finally:
        worker.close()
        client.close()
    assert not queued and len(delays) == 30
    assert max(delays) <= 3 * S, max(delays)  # queued -> posted: a 2 s pause after a failure at most
    tries = forge_server.requests(provider, path=bad)
    # Its own doubling backoff (2 s to 10 min): a handful of tries in 10 minutes, not one per 10 s.
    assert 5 <= len(tries) <= 10, len(tries)
    assert not latest_on_forge(forge_server, provider, bad)


def test_a_slow_forge_never_delays_a_healthy_one(store: Store, forge_server: Any) -> None:
    """Gitea takes a minute to answer; GitHub's statuses, queued while Gitea's posts are in
    flight, arrive meanwhile. Before, one worker served both: GitHub's waited for Gitea's answers."""
    slow = make_client(forge_server, "gitea", timeout=90)
    healthy = make_client(forge_server, "github")
    forge_server.delay_next(6, seconds=60, provider="gitea")
    worker = OutboxWorker(store, {"slow": slow, "healthy": healthy}, poll_interval=0.2)
    for i in range(6):
        enqueue(store, sha_of(f"s{i}"), "polyaxon/train", SUCCESS, dt.datetime.now(dt.UTC), repo="slow")
    worker.start()
    try:
        wait_until(
            lambda: len([r for r in store.outbox() if r.repo == "slow" and r.claimed_until is not None]) == 6,
            timeout=30,
            what="the slow forge's posts in flight",
        )
        queued = time.monotonic()
        for i in range(3):
            enqueue(store, sha_of(f"h{i}"), "polyaxon/train", SUCCESS, dt.datetime.now(dt.UTC), repo="healthy")
        worker.wake()
        wait_until(
            lambda: all(latest_on_forge(forge_server, "github", sha_of(f"h{i}")) for i in range(3)),
            timeout=30,
            what="the healthy forge's statuses",
        )
        took = time.monotonic() - queued
        print(f"\nhealthy forge's 3 statuses posted in {took:.2f} s beside a forge answering in 60 s")
        assert not any(latest_on_forge(forge_server, "gitea", sha_of(f"s{i}")) for i in range(6))  # still waiting
        forge_server.clear_injections()
        forge_server.release_hangs()
        wait_until(
            lambda: all(latest_on_forge(forge_server, "gitea", sha_of(f"s{i}")) for i in range(6)),
            timeout=30,
            what="the slow forge's statuses, once it answers",
        )
    finally:
        forge_server.clear_injections()
        forge_server.release_hangs()
        worker.close()
        slow.close()
        healthy.close()
    assert all(r.posted_at is not None for r in store.outbox())


def test_two_daemons_post_each_status_once_forge_by_forge(db_url: str, store: Store, forge_server: Any) -> None:
    """Two daemons on one database, each with a lane per forge, claiming at once: every status
    is posted exactly once (PostgreSQL skips locked rows; SQLite writes one at a time)."""
    stores = [Store.open(db_url) for _ in range(2)]
    clients: list[ForgeClient] = []
    workers = []
    now = dt.datetime.now(dt.UTC)
    expected: dict[str, set[tuple[str, str]]] = {"github": set(), "gitlab": set()}
    for provider, repo in (("github", "a"), ("gitlab", "b")):
        for i in range(40):
            sha, context = sha_of(f"{repo}{i % 4}"), f"polyaxon/op{i}"
            enqueue(store, sha, context, SUCCESS, now, repo=repo)
            expected[provider].add((sha, context))
    for s in stores:
        github, gitlab = make_client(forge_server, "github"), make_client(forge_server, "gitlab")
        clients += [github, gitlab]
        workers.append(OutboxWorker(s, {"a": github, "b": gitlab}, batch=7, concurrency=3, poll_interval=0.1))
    gate = threading.Barrier(len(workers))

    def start(worker: OutboxWorker) -> None:
        gate.wait(timeout=30)
        worker.start()

    starters = [threading.Thread(target=start, args=(w,)) for w in workers]
    try:
        for t in starters:
            t.start()
        wait_until(lambda: all(r.posted_at is not None for r in store.outbox()), timeout=60, what="all posted")
    finally:
        for t in starters:
            t.join(timeout=30)
        for w in workers:
            w.close()
        for c in clients:
            c.close()
        for s in stores:
            s.close()
    for provider in ("github", "gitlab"):
        posted = Counter(
            (r.path.rsplit("/", 1)[-1], (r.json or {}).get("context") or (r.json or {}).get("name"))
            for r in forge_server.requests(provider, "POST")
            if r.status == 201
        )
        assert set(posted) == expected[provider] and max(posted.values()) == 1, posted.most_common(3)


def test_what_is_shown_about_a_forge_carries_no_credentials(
    store: Store, forge_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """`/readyz` and `/metrics` are open to whoever reaches the daemon: a forge's name there, its
    last error and the log lines about it never carry an API URL's password or the token."""
    from reconciler.forge import Links
    from reconciler.forge.statuses import GitHubClient
    from reconciler.forge_wiring import ForgeWiring
    from reconciler.logs import register_secret

    token = forge_server.tokens["github"]
    register_secret(token)  # as the daemon does with every token it loads
    api_url = forge_server.url("github").replace("http://", "http://bot:hunter2@")
    client = GitHubClient(PROJECTS["github"], token, api_url, timeout=5)
    metrics = Metrics()
    worker = OutboxWorker(store, {REPO: client}, metrics=metrics)
    wiring = ForgeWiring(store, {REPO: client}, Links(None), worker=worker)
    forge_server.stop()
    try:
        enqueue(store, sha_of("c1"), "polyaxon/validate", SUCCESS, T0)
        assert worker.run_once(T0) == 0
        worker.gauge(T0 + dt.timedelta(minutes=6))
        shown = wiring.backlog_problem(T0 + dt.timedelta(minutes=6))
    finally:
        forge_server.start()
        worker.close()
        client.close()
    assert shown is not None and "cannot connect" in shown and client.forge in shown
    exposed = [shown, metrics.exposition().decode(), caplog.text, *(r.last_error or "" for r in store.outbox())]
    assert client.forge in exposed[1]
    for text in exposed:
        assert "hunter2" not in text and token not in text, text
