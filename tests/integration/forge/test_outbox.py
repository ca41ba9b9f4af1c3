"""The outbox worker against the local forge API server, on SQLite and PostgreSQL: statuses are
posted once, retried with backoff, paused by rate limits, coalesced after a long outage (driven
by an injected clock), and survive restarts and a SIGKILL in the middle of a post."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.forge import OutboxWorker
from reconciler.forge.outbox import NOT_SENT
from reconciler.statuses import CommitState
from reconciler.tracking import Store
from tests.infra.wait import wait_until

from .conftest import PROJECTS, T0, make_client

S = dt.timedelta(seconds=1)
SHA = "c" * 40
REPO = "models"


@pytest.fixture
def worker(store: Store, forge_server: Any, provider: Any) -> Iterator[OutboxWorker]:
    client = make_client(forge_server, provider)
    # One post at a time, so the tests can say which request met which injected failure.
    w = OutboxWorker(
        store, {REPO: client}, batch=20, backoff_base=2 * S, backoff_cap=dt.timedelta(minutes=5), concurrency=1
    )
    try:
        yield w
    finally:
        client.close()


def enqueue(store: Store, context: str, state: CommitState, now: dt.datetime, sha: str = SHA) -> bool:
    return store.enqueue_commit_status(
        repo=REPO, sha=sha, context=context, state=state, now=now, description=f"{context} {state}"
    )


def on_forge(forge: Any, provider: str, sha: str = SHA) -> list[tuple[str, CommitState]]:
    """(context, state) of every status the forge stored, oldest first, in our words."""
    back = {"failed": "failure", "canceled": "error"}
    out = []
    for s in forge.statuses(provider, PROJECTS[provider], sha):
        context = s.get("context") or s.get("name")
        state = s.get("state") or s.get("status")
        out.append((context, CommitState(back.get(state, state))))
    return out


def posts(forge: Any, provider: str) -> list[Any]:
    return [r for r in forge.requests(provider, "POST") if r.injected is None and r.status == 201]


def test_posts_each_status_once(store: Store, worker: OutboxWorker, forge_server: Any, provider: str) -> None:
    enqueue(store, "polyaxon/validate", CommitState.SUCCESS, T0)
    enqueue(store, "polyaxon/train", CommitState.PENDING, T0)
    assert worker.run_once(T0) == 2
    assert worker.run_once(T0 + S) == 0
    assert not enqueue(store, "polyaxon/train", CommitState.PENDING, T0 + S)  # same (sha, context, state)
    assert worker.run_once(T0 + 2 * S) == 0
    assert sorted(on_forge(forge_server, provider)) == [
        ("polyaxon/train", CommitState.PENDING),
        ("polyaxon/validate", CommitState.SUCCESS),
    ]
    assert all(r.posted_at == T0 for r in store.outbox())


def test_transient_failures_back_off_then_post_once(
    store: Store, worker: OutboxWorker, forge_server: Any, provider: str
) -> None:
    enqueue(store, "polyaxon/train", CommitState.SUCCESS, T0)
    forge_server.fail_next(3, status=503, provider=provider)
    assert worker.run_once(T0) == 0  # POST -> 503 (may have landed: the next attempt checks first)
    (row,) = store.outbox()
    assert row.next_attempt_at == T0 + 2 * S and row.attempts == 1 and "503" in (row.last_error or "")
    assert worker.run_once(T0 + S) == 0 and len(forge_server.requests(provider)) == 1  # not due yet
    assert worker.run_once(T0 + 2 * S) == 0  # GET (check) -> 503; backoff doubles
    assert store.outbox()[0].next_attempt_at == T0 + 6 * S
    assert worker.run_once(T0 + 6 * S) == 0  # GET -> 503 again; 8 s
    assert store.outbox()[0].next_attempt_at == T0 + 14 * S
    assert worker.run_once(T0 + 14 * S) == 1  # GET -> not there -> POST
    assert on_forge(forge_server, provider) == [("polyaxon/train", CommitState.SUCCESS)]
    assert len(posts(forge_server, provider)) == 1


def test_rate_limit_pauses_the_whole_forge_until_reset(
    store: Store, worker: OutboxWorker, forge_server: Any, provider: str
) -> None:
    for i in range(3):
        enqueue(store, f"polyaxon/op{i}", CommitState.PENDING, T0)
    forge_server.rate_limit_next(1, reset_after=600, provider=provider)
    assert worker.run_once(T0) == 0
    assert len(forge_server.requests(provider)) == 1  # the other two rows were held back, not sent
    rows = store.outbox()
    assert all(r.last_error and r.last_error.startswith(NOT_SENT) for r in rows)
    assert all(T0 + 598 * S <= r.next_attempt_at <= T0 + 601 * S for r in rows)
    enqueue(store, "polyaxon/late", CommitState.PENDING, T0 + 60 * S)
    assert worker.run_once(T0 + 300 * S) == 0
    assert len(forge_server.requests(provider)) == 1  # paused: nothing sent, new rows included
    assert worker.run_once(T0 + 601 * S) == 4
    # Rows held back by the pause were certainly not sent, so no check before posting them.
    assert len(forge_server.requests(provider, "GET")) == 0
    assert len(posts(forge_server, provider)) == 4


def test_retry_after_is_honoured(store: Store, worker: OutboxWorker, forge_server: Any, provider: str) -> None:
    enqueue(store, "polyaxon/train", CommitState.PENDING, T0)
    forge_server.throttle_next(1, retry_after=30, provider=provider)
    assert worker.run_once(T0) == 0
    assert worker.run_once(T0 + 29 * S) == 0
    assert worker.run_once(T0 + 30 * S) == 1
    assert len(forge_server.requests(provider)) == 2


def test_long_outage_loses_nothing_doubles_nothing_and_posts_only_latest_states(
    store: Store, worker: OutboxWorker, forge_server: Any, provider: str
) -> None:
    """A 45-minute forge outage, compressed: the clock is injected and stepped 10 s at a time."""
    now = T0
    enqueue(store, "polyaxon/a", CommitState.PENDING, now)
    assert worker.run_once(now) == 1
    forge_server.fail_next(10**6, status=502, provider=provider)
    outage_end = T0 + dt.timedelta(minutes=45)
    changes = {
        T0 + dt.timedelta(minutes=1): ("polyaxon/a", CommitState.SUCCESS),
        T0 + dt.timedelta(minutes=2): ("polyaxon/b", CommitState.PENDING),
        T0 + dt.timedelta(minutes=20): ("polyaxon/b", CommitState.FAILURE),
        T0 + dt.timedelta(minutes=30): ("polyaxon/validate", CommitState.PENDING),
        T0 + dt.timedelta(minutes=40): ("polyaxon/validate", CommitState.SUCCESS),
    }
    while now < outage_end + dt.timedelta(minutes=10):
        now += 10 * S
        if now >= outage_end:
            forge_server.clear_injections()
        for at, (context, state) in changes.items():
            if at == now:
                enqueue(store, context, state, now)
        worker.run_once(now)
    stored = on_forge(forge_server, provider)
    assert sorted(stored) == sorted(
        [
            ("polyaxon/a", CommitState.PENDING),
            ("polyaxon/a", CommitState.SUCCESS),
            ("polyaxon/b", CommitState.FAILURE),  # its pending was superseded during the outage
            ("polyaxon/validate", CommitState.SUCCESS),
        ]
    )
    assert max(Counter(stored).values()) == 1
    assert all(r.posted_at is not None or r.superseded_at is not None for r in store.outbox())
    failed = [r for r in forge_server.requests(provider) if r.injected]
    # The forge backs off, not each row: one try at a time, at most one per forge backoff cap
    # (10 s) over 45 minutes, however many statuses wait; not one per row per step (4 x 270).
    assert 5 <= len(failed) <= 45 * 60 / 10 + 5, len(failed)


def test_a_new_worker_after_a_restart_posts_what_the_old_one_left(
    store: Store, forge_server: Any, provider: Any, db_url: str
) -> None:
    enqueue(store, "polyaxon/train", CommitState.SUCCESS, T0)
    forge_server.fail_next(1, status=500, provider=provider)
    first = make_client(forge_server, provider)
    OutboxWorker(store, {REPO: first}).run_once(T0)
    first.close()
    store.close()
    reopened = Store.open(db_url)  # a new process' view: only the database carries state
    second = make_client(forge_server, provider)
    try:
        assert OutboxWorker(reopened, {REPO: second}).run_once(T0 + dt.timedelta(minutes=1)) == 1
    finally:
        second.close()
        reopened.close()
    assert on_forge(forge_server, provider) == [("polyaxon/train", CommitState.SUCCESS)]


@pytest.mark.parametrize("mode", ["post-then-block", "hang", "refused-then-post-then-block"])
def test_sigkill_mid_post_then_restart_posts_exactly_once(
    store: Store, forge_server: Any, provider: Any, db_url: str, tmp_path: Path, mode: str
) -> None:
    enqueue(store, "polyaxon/train", CommitState.SUCCESS, T0)
    start = T0
    if mode.startswith("refused-then-"):
        # A first try meets a forge that is down: nothing sent, no attempt counted. The crash
        # after the next (landed) post must still make the restarted worker check first.
        forge_server.stop()
        refused = make_client(forge_server, provider)
        try:
            assert OutboxWorker(store, {REPO: refused}).run_once(T0) == 0
        finally:
            refused.close()
        forge_server.start()
        (row,) = store.outbox()
        assert row.attempts == 0 and (row.last_error or "").startswith(NOT_SENT)
        mode, start = mode.removeprefix("refused-then-"), T0 + 20 * S
    if mode == "hang":
        forge_server.hang_next(1, seconds=60, provider=provider)
    marker = tmp_path / "marker"
    root = Path(__file__).resolve().parents[3]
    args = [
        db_url,
        provider,
        forge_server.url(provider),
        forge_server.tokens[provider],
        PROJECTS[provider],
        REPO,
        start.isoformat(),
        mode,
        str(marker),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.forge.outbox_proc", *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        wait_until(marker.exists, timeout=60, what="the worker process reached the post")
        if mode == "hang":
            wait_until(lambda: forge_server.requests(provider, "POST"), timeout=30, what="the hanging POST")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    (row,) = store.outbox()
    assert row.posted_at is None and row.attempts == 1  # claimed, never finished
    client = make_client(forge_server, provider)
    try:
        worker = OutboxWorker(store, {REPO: client})
        assert worker.run_once(start + 30 * S) == 0  # the dead worker's lease still holds the row
        assert worker.run_once(start + 61 * S) == 1
        assert worker.run_once(start + 120 * S) == 0
    finally:
        client.close()
    assert on_forge(forge_server, provider) == [("polyaxon/train", CommitState.SUCCESS)]
    assert len(posts(forge_server, provider)) == 1
    assert store.outbox()[0].posted_at == start + 61 * S


def test_thread_loop_posts_promptly_when_woken(store: Store, forge_server: Any, provider: Any) -> None:
    client = make_client(forge_server, provider)
    worker = OutboxWorker(store, {REPO: client}, poll_interval=30.0)
    worker.start()
    try:
        enqueue(store, "polyaxon/validate", CommitState.SUCCESS, dt.datetime.now(dt.UTC))
        worker.wake()
        wait_until(lambda: on_forge(forge_server, provider), timeout=10, what="the status on the forge")
    finally:
        worker.stop()
        client.close()


def test_concurrent_posts_each_status_exactly_once(store: Store, forge_server: Any, provider: Any) -> None:
    for i in range(40):
        enqueue(store, f"polyaxon/op{i}", CommitState.PENDING, T0, sha=f"{i % 3:040x}")
    forge_server.fail_next(5, status=500, provider=provider)
    client = make_client(forge_server, provider)
    worker = OutboxWorker(store, {REPO: client}, batch=25, concurrency=8)
    try:
        now = T0
        for _ in range(10):
            worker.run_once(now)
            now += dt.timedelta(minutes=1)
    finally:
        worker.close()
        client.close()
    stored = [s for i in range(3) for s in on_forge(forge_server, provider, f"{i:040x}")]
    assert len(stored) == 40 and len(set(stored)) == 40
    assert all(r.posted_at is not None for r in store.outbox())
