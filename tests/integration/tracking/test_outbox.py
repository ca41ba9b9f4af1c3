"""The durable commit-status outbox: idempotent enqueue, leases, coalescing, concurrent claims."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path

import pytest

from reconciler.statuses import CommitState, Status, commit_state
from reconciler.tracking import Store

from .helpers import commit_run
from .outbox_worker import claim_all

S = dt.timedelta(seconds=1)


def enqueue(store: Store, sha: str, state: CommitState, now: dt.datetime, context: str = "polyaxon/a") -> bool:
    return store.enqueue_commit_status(
        repo="r",
        sha=sha,
        context=context,
        state=state,
        now=now,
        description=str(state),
        target_url="http://x/",
    )


def test_enqueue_is_idempotent_on_sha_context_state(store: Store, now: dt.datetime) -> None:
    assert enqueue(store, "c1", CommitState.PENDING, now)
    assert not enqueue(store, "c1", CommitState.PENDING, now + S)
    assert enqueue(store, "c1", CommitState.SUCCESS, now + S)
    assert enqueue(store, "c1", CommitState.PENDING, now, context="polyaxon/b")
    assert enqueue(store, "c2", CommitState.PENDING, now)
    rows = store.outbox("c1")
    assert [(r.context, r.state) for r in rows] == [
        ("polyaxon/a", CommitState.PENDING),
        ("polyaxon/a", CommitState.SUCCESS),
        ("polyaxon/b", CommitState.PENDING),
    ]
    assert rows[0].created_at == now and rows[0].attempts == 0


def test_status_change_and_outbox_row_commit_together(seeded: Store, now: dt.datetime) -> None:
    run = commit_run(seeded, "r:a.yaml#a", "c1", now).run

    class Crash(Exception):
        pass

    with pytest.raises(Crash), seeded.unit_of_work() as tx:
        seeded.transition(run.name, Status.SUCCEEDED, at=now + S, session=tx)
        enqueue_in(seeded, tx, run.commit_sha or "", Status.SUCCEEDED, now + S)
        raise Crash  # dies before commit: neither may survive
    stored = seeded.run(run.name)
    assert stored is not None and stored.status == Status.CREATED
    assert seeded.outbox() == []

    with seeded.unit_of_work() as tx:
        seeded.transition(run.name, Status.SUCCEEDED, at=now + S, session=tx)
        enqueue_in(seeded, tx, run.commit_sha or "", Status.SUCCEEDED, now + S)
    assert [(r.sha, r.state) for r in seeded.outbox()] == [("c1", CommitState.SUCCESS)]
    assert [c.status for c in seeded.history(run)] == [Status.CREATED, Status.SUCCEEDED]


def enqueue_in(store: Store, tx: object, sha: str, status: Status, now: dt.datetime) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(tx, Session)
    store.enqueue_commit_status(
        repo="r", sha=sha, context="polyaxon/a", state=commit_state(status), now=now, session=tx
    )


def test_claim_leases_rows_and_mark_posted_finishes_them(store: Store, now: dt.datetime) -> None:
    for sha in ("c1", "c2", "c3"):
        enqueue(store, sha, CommitState.PENDING, now)
    first = store.claim_outbox(2, now, lease=dt.timedelta(seconds=30))
    assert [r.sha for r in first] == ["c1", "c2"]
    assert all(r.attempts == 1 and r.claimed_until == now + 30 * S for r in first)
    second = store.claim_outbox(10, now + S)
    assert [r.sha for r in second] == ["c3"]
    assert store.claim_outbox(10, now + 2 * S) == []  # everything is leased

    assert first[0].id is not None and first[1].id is not None
    store.mark_posted(first[0].id, now + 3 * S)
    store.mark_failed(first[1].id, next_attempt=now + 60 * S, error="502 from forge")
    # c3's poster "died": its lease ends at now+1s+5min and the row comes back then.
    assert store.claim_outbox(10, now + 59 * S) == []
    retried = store.claim_outbox(10, now + 60 * S)
    assert [(r.sha, r.attempts, r.last_error) for r in retried] == [("c2", 2, "502 from forge")]
    expired = store.claim_outbox(10, now + S + dt.timedelta(minutes=5))
    assert [(r.sha, r.attempts) for r in expired] == [("c3", 2)]
    posted = store.outbox("c1")[0]
    assert posted.posted_at == now + 3 * S and posted.claimed_until is None


def test_pending_outbox_lists_what_claim_would_take(store: Store, now: dt.datetime) -> None:
    enqueue(store, "c1", CommitState.PENDING, now)
    enqueue(store, "c2", CommitState.PENDING, now + 10 * S)
    assert [r.sha for r in store.pending_outbox(now + S)] == ["c1"]
    assert [r.sha for r in store.pending_outbox(now + 10 * S)] == ["c1", "c2"]
    store.claim_outbox(1, now + 10 * S)
    assert [r.sha for r in store.pending_outbox(now + 10 * S)] == ["c2"]


def test_only_the_latest_state_per_sha_and_context_is_posted(store: Store, now: dt.datetime) -> None:
    enqueue(store, "c1", CommitState.PENDING, now)
    enqueue(store, "c1", CommitState.FAILURE, now + S)
    enqueue(store, "c1", CommitState.PENDING, now, context="polyaxon/b")
    claimed = {r.context: r for r in store.claim_outbox(10, now + S)}
    assert {c: r.state for c, r in claimed.items()} == {
        "polyaxon/a": CommitState.FAILURE,
        "polyaxon/b": CommitState.PENDING,
    }
    store.mark_posted(claimed["polyaxon/a"].id or 0, now + 2 * S)
    rows = {(r.context, r.state): r for r in store.outbox("c1")}
    assert rows[("polyaxon/a", CommitState.PENDING)].superseded_at == now + 2 * S  # never posted
    assert rows[("polyaxon/a", CommitState.PENDING)].posted_at is None
    assert store.pending_outbox(now + 10 * S) == []


def test_a_newer_state_waits_while_an_older_one_is_in_flight(store: Store, now: dt.datetime) -> None:
    enqueue(store, "c1", CommitState.PENDING, now)
    [pending] = store.claim_outbox(10, now, lease=dt.timedelta(seconds=30))
    enqueue(store, "c1", CommitState.SUCCESS, now + S)
    assert store.claim_outbox(10, now + 2 * S) == []  # would race the pending post
    store.mark_posted(pending.id or 0, now + 3 * S)
    assert [r.state for r in store.claim_outbox(10, now + 4 * S)] == [CommitState.SUCCESS]


def test_coalesce_retires_replaced_states(store: Store, now: dt.datetime) -> None:
    enqueue(store, "c1", CommitState.PENDING, now)
    enqueue(store, "c1", CommitState.SUCCESS, now + S)
    enqueue(store, "c2", CommitState.PENDING, now)
    assert store.coalesce_outbox(now + 2 * S) == 1
    assert store.coalesce_outbox(now + 3 * S) == 0
    left = [(r.sha, r.state) for r in store.outbox() if r.superseded_at is None]
    assert left == [("c1", CommitState.SUCCESS), ("c2", CommitState.PENDING)]


@pytest.mark.slow
def test_two_processes_never_claim_the_same_row(db_url: str, store: Store, now: dt.datetime, tmp_path: Path) -> None:
    rows = 400
    for i in range(rows):
        enqueue(store, f"sha{i:04d}", CommitState.PENDING, now)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    outs = [tmp_path / f"claims-{n}.txt" for n in range(2)]
    procs = [ctx.Process(target=claim_all, args=(db_url, now, 3, barrier, str(out))) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0, f"worker exited {p.exitcode}"
    claims = [[int(x) for x in out.read_text().split()] for out in outs]
    everything = claims[0] + claims[1]
    assert len(everything) == len(set(everything)), "a row was claimed twice"
    assert sorted(everything) == sorted(r.id for r in store.outbox())
    assert all(r.attempts == 1 for r in store.outbox())


def test_claims_and_coalescing_per_forge_touch_only_its_repos(store: Store, now: dt.datetime) -> None:
    for repo in ("r", "s", "t"):
        for state in (CommitState.PENDING, CommitState.SUCCESS):
            store.enqueue_commit_status(repo=repo, sha="c1", context="polyaxon/a", state=state, now=now)
    assert store.coalesce_outbox(now, repos={"r", "s"}) == 2
    assert [r.repo for r in store.outbox() if r.superseded_at is None] == ["r", "s", "t", "t"]
    claimed = store.claim_outbox(10, now, repos={"s", "t"})
    assert sorted(r.repo for r in claimed) == ["s", "t"]  # t's newest only; nothing of r
    assert store.claim_outbox(10, now, repos=set()) == []
    assert [r.repo for r in store.claim_outbox(10, now)] == ["r"]


def test_a_try_that_sent_nothing_is_not_an_attempt(store: Store, now: dt.datetime) -> None:
    enqueue(store, "c1", CommitState.PENDING, now)
    [row] = store.claim_outbox(1, now)
    assert row.id is not None and row.attempts == 1
    store.mark_failed(row.id, now + S, "[not sent] connection refused", sent=False)
    assert store.outbox()[0].attempts == 0
    store.claim_outbox(1, now + S)
    store.mark_failed(row.id, now + 2 * S, "502", sent=True)
    assert store.outbox()[0].attempts == 1


def test_retry_now_makes_a_forges_waiting_rows_due_but_not_refused_or_in_flight(store: Store, now: dt.datetime) -> None:
    later = now + dt.timedelta(minutes=10)
    errors = {"c1": "[not sent] refused", "c2": "502", "c3": "[refused] 404", "c4": "[refusedX] 5", "c5": None}
    for sha, error in errors.items():
        enqueue(store, sha, CommitState.PENDING, now)
        [row] = store.claim_outbox(1, now)
        if error is not None:  # c5 stays in flight
            store.mark_failed(row.id or 0, later, error)
    store.enqueue_commit_status(repo="elsewhere", sha="c6", context="polyaxon/a", state=CommitState.PENDING, now=later)
    assert store.retry_outbox_now({"r"}, now + S, unless_error_startswith="[refused] ") == 3
    due = {r.sha: r.next_attempt_at for r in store.outbox()}
    assert due == {"c1": now + S, "c2": now + S, "c3": later, "c4": now + S, "c5": now, "c6": later}
    # LIKE's wildcards in the prefix are taken literally: "[refusedX] 5" does not start with "[refused_]".
    store.mark_failed(store.outbox("c4")[0].id or 0, later, "[refusedX] 5")
    assert store.retry_outbox_now({"r"}, now + 2 * S, unless_error_startswith="[refused_]") == 2  # c3, c4
    assert store.retry_outbox_now(set(), now + 3 * S) == 0


def test_backlog_counts_what_waits_per_repo(store: Store, now: dt.datetime) -> None:
    enqueue(store, "c1", CommitState.PENDING, now)
    enqueue(store, "c1", CommitState.SUCCESS, now + S)
    enqueue(store, "c2", CommitState.PENDING, now + 2 * S)
    store.enqueue_commit_status(repo="s", sha="c1", context="polyaxon/a", state=CommitState.PENDING, now=now + 5 * S)
    assert [(b.repo, b.pending, b.oldest_created_at) for b in store.outbox_backlog()] == [
        ("r", 3, now),
        ("s", 1, now + 5 * S),
    ]
    store.coalesce_outbox(now + 3 * S)  # c1's pending is replaced
    [c1] = [r for r in store.claim_outbox(10, now + 3 * S) if r.sha == "c1" and r.repo == "r"]
    store.mark_posted(c1.id or 0, now + 4 * S)
    assert [(b.repo, b.pending, b.oldest_created_at) for b in store.outbox_backlog()] == [
        ("r", 1, now + 2 * S),
        ("s", 1, now + 5 * S),
    ]
