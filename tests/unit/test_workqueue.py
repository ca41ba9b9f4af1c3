"""The work queue's contract: dedup, one worker per key, dirty requeue, rate limiting, shutdown."""

from __future__ import annotations

import threading

import pytest

from reconciler.backoff import Backoff
from reconciler.workqueue import ShutDown, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_keys_are_deduplicated_and_fifo() -> None:
    q = WorkQueue()
    for key in ["a", "b", "a", "c", "b"]:
        q.add(key)
    assert [q.get(timeout=0), q.get(timeout=0), q.get(timeout=0)] == ["a", "b", "c"]
    assert q.get(timeout=0) is None


def test_a_key_in_processing_is_not_handed_out_twice_and_comes_back_when_dirty() -> None:
    q = WorkQueue()
    q.add("repo")
    assert q.get(timeout=0) == "repo"
    q.add("repo")  # a webhook arrives while we reconcile
    assert q.get(timeout=0) is None, "must not give the same key to a second worker"
    q.done("repo")
    assert q.get(timeout=0) == "repo", "the change seen during processing is not lost"
    q.done("repo")
    assert q.get(timeout=0) is None


def test_rate_limited_requeue_uses_capped_exponential_delays() -> None:
    clock = Clock()
    q = WorkQueue(backoff=Backoff(initial=1.0, cap=5.0), now=clock)
    delays = []
    for _ in range(5):
        delays.append(q.add_rate_limited("k"))
        clock.t += 100
        assert q.get(timeout=0) == "k"
        q.done("k")
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    q.forget("k")
    assert q.add_rate_limited("k") == 1.0


def test_add_after_waits_for_the_clock() -> None:
    clock = Clock()
    q = WorkQueue(now=clock)
    q.add_after("poll", 60)
    assert q.get(timeout=0) is None
    clock.t += 59.9
    assert q.get(timeout=0) is None
    clock.t += 0.2
    assert q.get(timeout=0) == "poll"
    assert q.depth == 0


def test_a_key_waits_for_one_delayed_requeue_the_earliest() -> None:
    clock = Clock()
    q = WorkQueue(now=clock)
    q.add_after("repo", 60)  # the poll timer
    q.add_after("repo", 90)  # a later one changes nothing
    q.add_after("repo", 5)  # an earlier one (a retry) replaces it
    assert q.depth == 1
    clock.t += 5
    assert q.get(timeout=0) == "repo"
    q.done("repo")
    clock.t += 100
    assert q.get(timeout=0) is None, "the superseded timers must not fire"
    assert q.depth == 0


def test_extra_reconciles_do_not_multiply_the_poll_timer() -> None:
    """Each reconcile re-arms the poll timer; a triggered one must not arm a second timer."""
    clock = Clock()
    q = WorkQueue(now=clock)
    q.add_after("repo", 60)  # due at +60
    for _ in range(5):  # five webhooks, ten seconds apart, each reconciled and re-arming the timer
        clock.t += 10
        q.add("repo")
        assert q.get(timeout=0) == "repo"
        q.done("repo")
        q.add_after("repo", 60)
    clock.t += 10  # +60: the poll
    assert q.get(timeout=0) == "repo"
    q.done("repo")
    q.add_after("repo", 60)  # re-armed: due at +120
    clock.t += 55
    assert q.get(timeout=0) is None, "one poll per interval, not one per webhook"
    clock.t += 5
    assert q.get(timeout=0) == "repo"


def test_blocking_get_is_woken_by_add() -> None:
    q = WorkQueue()
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(q.get(timeout=30)))
    worker.start()
    q.add("x")
    worker.join(timeout=30)
    assert got == ["x"]


def test_shutdown_releases_waiting_workers() -> None:
    q = WorkQueue()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            q.get(timeout=30)
        except ShutDown as e:
            errors.append(e)

    worker = threading.Thread(target=work)
    worker.start()
    q.shut_down()
    worker.join(timeout=30)
    assert not worker.is_alive() and len(errors) == 1
    q.add("late")
    with pytest.raises(ShutDown):
        q.get(timeout=0)
