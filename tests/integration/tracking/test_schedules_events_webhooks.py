"""Schedule ticks, event subscriptions and webhook deliveries: each fires exactly once."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.statuses import Status
from reconciler.tracking import NotFound, ScheduleMove, Store, TickRow

from .helpers import commit_run

S = dt.timedelta(seconds=1)
H = dt.timedelta(hours=1)
A, B = "r:a.yaml#a", "r:b.yaml#b"


def test_due_ticks(seeded: Store, now: dt.datetime) -> None:
    seeded.set_schedule("r:a.yaml#a", now + H, now)
    seeded.set_schedule("r:b.yaml#b", now + 2 * H, now)
    assert seeded.due_ticks(now) == []
    assert [t.op_key for t in seeded.due_ticks(now + H)] == ["r:a.yaml#a"]
    due = seeded.due_ticks(now + 3 * H)
    assert [(t.op_key, t.tick_at) for t in due] == [("r:a.yaml#a", now + H), ("r:b.yaml#b", now + 2 * H)]
    assert [t.op_key for t in seeded.due_ticks(now + 3 * H, limit=1)] == ["r:a.yaml#a"]


def fire(store: Store, at: dt.datetime, next_at: dt.datetime, now: dt.datetime, op_key: str = A) -> bool:
    """Claim the fired tick of `op_key` at `at` and move its schedule on, in one transaction, as a
    tick batch does (`orchestration.ticking.fire`); True for the caller that fired it."""
    with store.unit_of_work() as tx:
        [(_, state)] = store.lock_schedules([store.op_id(op_key, session=tx) or 0], tx)
        fired = (state.operation_id, at) in store.claim_ticks([TickRow(state.operation_id, at)], now, tx)
        store.advance_schedules([ScheduleMove(state.operation_id, at, next_at, 1 if fired else 0)], now, tx)
        return fired


def test_a_tick_fires_once_and_advances_the_schedule(seeded: Store, now: dt.datetime) -> None:
    seeded.set_schedule(A, now + H, now)
    assert fire(seeded, now + H, now + 2 * H, now + H)
    # A restarted daemon that still thinks the tick is due cannot fire it again.
    assert not fire(seeded, now + H, now + 2 * H, now + H + S)
    state = seeded.schedule_state(A)
    assert state is not None
    assert (state.last_tick_at, state.next_tick_at, state.run_count) == (now + H, now + 2 * H, 1)
    assert seeded.due_ticks(now + H + S) == []

    run = commit_run(seeded, A, "tick-1", now + H).run
    assert run.id is not None
    with seeded.unit_of_work() as tx:
        seeded.attach_tick_runs([(state.operation_id, now + H, run.id)], tx)
    [tick] = seeded.ticks(A)
    assert tick.run_id == run.id and tick.claimed_at == now + H


def test_ticks_are_claimed_together_and_each_once(seeded: Store, now: dt.datetime) -> None:
    ids = seeded.op_ids([A, B])
    a, b = ids[A], ids[B]
    with seeded.unit_of_work() as tx:
        claimed = seeded.claim_ticks(
            [TickRow(a, now + H), TickRow(b, now + H, "skipped", "ConcurrencyForbid", "b-1 is active")], now, tx
        )
    assert claimed == {(a, now + H), (b, now + H)}
    with seeded.unit_of_work() as tx:
        again = [
            TickRow(a, now + H),  # fired already: not claimed twice, left as it was
            TickRow(a, now + 2 * H, "missed", "Missed", "past the deadline", missed_until=now + 3 * H, missed_count=2),
            TickRow(b, now + 2 * H),
        ]
        assert seeded.claim_ticks(again, now + 4 * H, tx) == {(a, now + 2 * H), (b, now + 2 * H)}
    assert [(t.tick_at, t.outcome, t.claimed_at, t.missed_count) for t in seeded.ticks(A)] == [
        (now + H, "fired", now, None),
        (now + 2 * H, "missed", now + 4 * H, 2),
    ]
    assert [(t.outcome, t.reason) for t in seeded.ticks(B)] == [("skipped", "ConcurrencyForbid"), ("fired", None)]


def test_fired_ticks_survive_removing_and_re_adding_the_schedule(seeded: Store, now: dt.datetime) -> None:
    seeded.set_schedule(A, now + H, now)
    assert fire(seeded, now + H, now + 2 * H, now + H)
    seeded.remove_schedule(A)
    assert seeded.schedule_state(A) is None
    seeded.set_schedule(A, now + H, now + H)
    assert not fire(seeded, now + H, now + 2 * H, now + H)
    assert fire(seeded, now + 2 * H, now + 3 * H, now + 2 * H)
    state = seeded.schedule_state(A)
    assert state is not None and state.run_count == 1  # counting restarts with the new schedule


def test_subscription_sees_each_matching_transition_once(seeded: Store, now: dt.datetime) -> None:
    old = commit_run(seeded, "r:a.yaml#a", "c0", now - H).run
    seeded.transition(old, Status.SUCCEEDED, at=now - H + S)  # before subscribing: never fires
    sub = seeded.upsert_subscription("r:b.yaml#b", "r:a.yaml#a", [Status.SUCCEEDED, Status.FAILED], now)
    assert sub.id is not None

    ok = commit_run(seeded, "r:a.yaml#a", "c1", now + S).run
    seeded.transition(ok, Status.RUNNING, at=now + 2 * S)
    seeded.transition(ok, Status.SUCCEEDED, at=now + 3 * S)
    bad = commit_run(seeded, "r:a.yaml#a", "c2", now + 4 * S).run
    seeded.transition(bad, Status.FAILED, at=now + 5 * S)
    other = commit_run(seeded, "r:b.yaml#b", "c1", now + S).run
    seeded.transition(other, Status.SUCCEEDED, at=now + 6 * S)  # not the source operation

    events = seeded.pending_events(sub.id)
    assert [(e.run.name, e.change.status) for e in events] == [
        (ok.name, Status.SUCCEEDED),
        (bad.name, Status.FAILED),
    ]
    first = events[0].change.id
    assert first is not None
    downstream = commit_run(seeded, "r:b.yaml#b", f"upstream-{ok.uuid}", now + 7 * S).run
    with seeded.unit_of_work() as tx:
        assert seeded.consume_transition(sub.id, first, now + 7 * S, run=downstream, session=tx)
    assert not seeded.consume_transition(sub.id, first, now + 8 * S)  # a second daemon, or a retry
    assert [e.run.name for e in seeded.pending_events(sub.id)] == [bad.name]


def test_done_subscription_matches_every_done_status(seeded: Store, now: dt.datetime) -> None:
    sub = seeded.upsert_subscription("r:b.yaml#b", "r:a.yaml#a", [Status.DONE], now)
    assert sub.id is not None
    for i, status in enumerate([Status.SUCCEEDED, Status.STOPPED, Status.SKIPPED], 1):
        run = commit_run(seeded, "r:a.yaml#a", f"c{i}", now + i * S).run
        seeded.transition(run, status, at=now + i * S)
    assert [e.change.status for e in seeded.pending_events(sub.id)] == [
        Status.SUCCEEDED,
        Status.STOPPED,
        Status.SKIPPED,
    ]


def test_subscription_upsert_and_removal(seeded: Store, now: dt.datetime) -> None:
    first = seeded.upsert_subscription("r:b.yaml#b", "r:a.yaml#a", [Status.SUCCEEDED], now)
    again = seeded.upsert_subscription("r:b.yaml#b", "r:a.yaml#a", [Status.FAILED, Status.SUCCEEDED], now + S)
    assert again.id == first.id and again.kinds == ["failed", "succeeded"] and again.created_at == now
    assert [s.id for s in seeded.subscriptions("r:a.yaml#a")] == [first.id]
    assert seeded.subscriptions("r:b.yaml#b") == []
    seeded.remove_subscription("r:b.yaml#b", "r:a.yaml#a")
    assert seeded.subscriptions() == []


def test_webhook_deliveries_are_deduplicated(store: Store, now: dt.datetime) -> None:
    assert store.record_delivery("github", "d-1", now)
    assert not store.record_delivery("github", "d-1", now + S)
    assert store.record_delivery("gitea", "d-1", now)  # ids are per provider
    assert store.record_delivery("github", "d-2", now)


def test_old_delivery_ids_are_pruned(store: Store, now: dt.datetime) -> None:
    week = dt.timedelta(days=7)
    store.record_delivery("github", "old", now - week - S)
    store.record_delivery("github", "edge", now - week)
    store.record_delivery("gitea", "new", now)
    assert store.prune_deliveries(now - week) == 1
    assert store.prune_deliveries(now - week) == 0
    assert store.record_delivery("github", "old", now)  # forgotten: a week-old id is new again
    assert not store.record_delivery("github", "edge", now) and not store.record_delivery("gitea", "new", now)


def test_the_write_probe_leaves_nothing_behind(store: Store, now: dt.datetime) -> None:
    assert store.write_problem(now) is None
    assert store.write_problem(now) is None  # twice at the same instant: no collision
    assert store.prune_deliveries(now + week_later()) == 0  # no probe row was kept


def week_later() -> dt.timedelta:
    return dt.timedelta(days=8)


def test_a_note_is_history_not_a_transition(seeded: Store, now: dt.datetime) -> None:
    """A note (drift corrected) is a history row that keeps the run's status: it fires no
    subscription and is not the reason the run entered its status."""
    sub = seeded.upsert_subscription("r:b.yaml#b", "r:a.yaml#a", [Status.RUNNING], now)
    assert sub.id is not None
    run = commit_run(seeded, "r:a.yaml#a", "c1", now + S).run
    seeded.transition(run, Status.RUNNING, at=now + 2 * S, reason="Started")
    note = seeded.note(run.name, at=now + 3 * S, reason="DriftCorrected", message="Deployment edited; re-applied")
    assert (note.status, note.previous) == (Status.RUNNING, Status.RUNNING)
    history = seeded.history(run.name)
    assert [(h.status, h.reason) for h in history][-2:] == [
        (Status.RUNNING, "Started"),
        (Status.RUNNING, "DriftCorrected"),
    ]
    assert seeded.run(run.name).status == Status.RUNNING  # type: ignore[union-attr]
    assert [e.change.reason for e in seeded.pending_events(sub.id)] == ["Started"]
    assert run.id is not None and seeded.last_reasons([run.id]) == {run.id: "Started"}
    with pytest.raises(NotFound):
        seeded.note("no-such-run", at=now, reason="DriftCorrected")
