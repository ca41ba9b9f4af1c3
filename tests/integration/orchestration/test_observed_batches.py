"""Statuses a backend reports together, recorded together (`Daemon.record_transitions`, what the
status observer calls with a burst of first statuses): one transaction for the batch, each run in
its status with its history, and what the transitions cause (subscribed runs) as when they come
one at a time; a run an unknown backend object names, or a transition the lifecycle forbids, is
skipped without losing the others. And a run a pass holds until its tick is left to that pass by
a resume meanwhile: it is submitted once."""

from __future__ import annotations

import datetime as dt
import threading

from reconciler.model import StatusTransition
from tests.infra.daemon import DaemonHarness
from tests.integration.orchestration.conftest import T0
from tests.integration.orchestration.test_events import FILES, start_a
from tests.integration.orchestration.test_tick_batches import Statements, every_minute

M = dt.timedelta(minutes=1)
S = dt.timedelta(seconds=1)


def test_statuses_observed_together_cost_the_same_transactions_for_2_or_6(h: DaemonHarness) -> None:
    h.apply_git(every_minute(8), T0)
    h.fire_ticks(T0 + M)
    names = h.names()
    assert len(names) == 8
    counter = Statements(h.store)
    commits = []
    for burst in (names[:2], names[2:]):
        with counter.counting():
            h.daemon.record_transitions([StatusTransition(name, "scheduled", T0 + M + S) for name in burst])
        commits.append(counter.commits)
    # The statuses in one transaction, the runs they concern read in one, the subscriptions in one.
    assert commits[0] == commits[1] == 3
    for name in names:
        assert h.run(name).status == "scheduled"
        assert [c.status for c in h.store.history(name)][-1] == "scheduled"
    # One at a time, the same statuses cost a few transactions each.
    with counter.counting():
        for name in names[2:]:
            h.daemon.record_transition(StatusTransition(name, "running", T0 + M + 2 * S))
    assert counter.commits >= 6 * 2


def test_a_bad_transition_in_a_batch_leaves_the_others_recorded(h: DaemonHarness) -> None:
    h.apply_git(every_minute(2), T0)
    h.fire_ticks(T0 + M)
    first, second = h.names()
    h.record(first, "succeeded", T0 + M + S)
    h.daemon.record_transitions(
        [
            StatusTransition("not-a-run-of-ours", "running", T0 + M + 2 * S),
            StatusTransition(first, "running", T0 + M + 2 * S),  # a done run never changes
            StatusTransition(second, "running", T0 + M + 2 * S),
        ]
    )
    assert h.run(first).status == "succeeded"
    assert h.run(second).status == "running"


def test_a_subscription_fires_from_statuses_recorded_together(h: DaemonHarness) -> None:
    assert "ops/b.yaml" in FILES
    a = start_a(h)
    h.set_outputs(a, {"loss": 0.5})
    h.daemon.record_transitions([StatusTransition(a, "running", T0 + M), StatusTransition(a, "succeeded", T0 + M + S)])
    [b] = h.by_op("b")
    assert b.params == {"loss": 0.5}
    h.daemon.record_transitions([StatusTransition(b.name, "running", T0 + 2 * M)])
    assert h.by_op("c") == []
    h.daemon.record_transitions(
        [StatusTransition(b.name, "failed", T0 + 3 * M), StatusTransition(a, "failed", T0 + 3 * M)]
    )
    assert len(h.by_op("c")) == 1 and len(h.by_op("b")) == 1


def test_a_resume_leaves_a_run_held_until_its_tick_to_the_pass_holding_it(h: DaemonHarness) -> None:
    h.daemon.orchestration.lead = dt.timedelta(seconds=5)
    h.apply_git(every_minute(3), T0)
    waiting, release = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:
        waiting.set()
        assert release.wait(30), "the test never released the pass"
        h.clock.advance(dt.timedelta(seconds=seconds))

    h.daemon.applier.sleep = sleep
    h.clock.set(T0 + M - 3 * S)
    errors: list[BaseException] = []

    def fire() -> None:
        try:
            h.daemon.fire_ticks()
        except BaseException as e:  # reported below
            errors.append(e)

    pass_ = threading.Thread(target=fire)
    pass_.start()
    try:
        assert waiting.wait(30), "the pass never waited for the tick"
        h.daemon.resume()  # finds the three runs recorded and not submitted
        assert h.submitted == []
    finally:
        release.set()
        pass_.join(30)
    assert errors == [] and not pass_.is_alive()
    assert len(h.submitted) == 3 and len(set(h.names())) == 3
