"""Ticks decided ahead of their time (`ticking.TICK_LEAD`), on the production daemon: a pass a few
seconds before a tick claims it and records its run, and the run's object is created when the
tick is due, never before, whether the same pass waits for it or a resume after a restart does;
a schedule whose decision could change in between (forbid, dependsOnPast) waits until it is due;
each tick still fires once.

The applier sleeps until a held run is due; here its sleep moves the harness's clock (nothing
waits in real time), and the scripted backend notes the clock at each submit."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.orchestration import ticking
from tests.infra.daemon import DaemonHarness
from tests.integration.orchestration.conftest import T0
from tests.integration.orchestration.test_tick_batches import every_minute

M = dt.timedelta(minutes=1)
LEAD = dt.timedelta(seconds=5)
TICK = T0 + M
EARLY = TICK - dt.timedelta(seconds=3)


@pytest.fixture
def moments(h: DaemonHarness, monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The daemon decides ticks `LEAD` ahead; its sleeps move the clock; each submit notes the
    clock (returned list)."""
    h.daemon.orchestration.lead = LEAD
    submitted_at: list[dt.datetime] = []
    real = h.scripted.submit

    def submit(run: object) -> str:
        submitted_at.append(h.clock())
        return real(run)  # type: ignore[arg-type]

    monkeypatch.setattr(h.scripted, "submit", submit)
    h.daemon.applier.sleep = lambda seconds: sleep(h, seconds)
    return submitted_at


def sleep(h: DaemonHarness, seconds: float) -> None:
    h.clock.advance(dt.timedelta(seconds=seconds))


def test_a_tick_within_the_lead_is_recorded_ahead_and_created_when_due(
    h: DaemonHarness, moments: list[dt.datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ticking, "TICK_BATCH", 2)  # held across batches, created together
    h.apply_git(every_minute(5), T0)
    h.fire_ticks(EARLY)
    assert len(moments) == 5 and min(moments) >= TICK
    assert {r.cause_id for r in h.submitted} == {"schedule:2025-03-03T00:01:00Z"}
    ticks = h.store.ticks("r:ops/tick-000.yaml#tick-000")
    assert [(t.tick_at, t.outcome) for t in ticks] == [(TICK, "fired")]
    # The timer's pass at the tick itself finds it handled: nothing fires twice.
    h.fire_ticks(TICK)
    assert len(h.submitted) == 5


def test_a_tick_past_the_lead_is_left_until_its_pass(h: DaemonHarness, moments: list[dt.datetime]) -> None:
    h.apply_git(every_minute(2), T0)
    h.fire_ticks(TICK - LEAD - dt.timedelta(seconds=1))
    assert moments == []
    assert h.store.ticks("r:ops/tick-000.yaml#tick-000") == []


@pytest.mark.parametrize("config", [{"concurrency": "forbid"}, {"concurrency": "replace"}])
def test_a_schedule_whose_decision_reads_its_runs_is_decided_when_due(
    h: DaemonHarness, moments: list[dt.datetime], config: dict[str, str]
) -> None:
    h.config["r"] = {"schedules": config}
    h.apply_git(every_minute(2), T0)
    h.fire_ticks(EARLY)
    assert moments == []
    assert h.store.ticks("r:ops/tick-000.yaml#tick-000") == []
    h.fire_ticks(TICK)
    assert moments == [TICK, TICK]


def test_a_run_recorded_ahead_is_not_created_early_by_a_resume(h: DaemonHarness, moments: list[dt.datetime]) -> None:
    h.apply_git(every_minute(3), T0)
    # The pass decides and records the ticks ahead, then the daemon stops before creating them.
    works = list(h.daemon.orchestration.due(EARLY))
    assert sum(len(w.new_runs) for w in works) == 3 and moments == []
    restarted = h.restart()
    restarted.applier.sleep = lambda seconds: sleep(h, seconds)
    h.resume(EARLY + dt.timedelta(seconds=1))
    assert len(moments) == 3 and min(moments) >= TICK
    h.resume(TICK + M)
    assert len(moments) == 3


def test_a_daemon_stopping_while_runs_wait_for_their_tick_leaves_them_to_a_resume(
    h: DaemonHarness, moments: list[dt.datetime]
) -> None:
    h.apply_git(every_minute(3), T0)
    h.daemon.applier.sleep = h.daemon.applier.stopping.wait  # the production wait, not the clock's
    h.daemon.applier.stopping.set()  # what Daemon.stop does: the wait ends at once
    h.fire_ticks(EARLY)
    # Claimed and recorded, but never created before the tick, not even by a daemon leaving.
    assert moments == []
    assert [t.outcome for t in h.store.ticks("r:ops/tick-000.yaml#tick-000")] == ["fired"]
    restarted = h.restart()
    restarted.applier.sleep = lambda seconds: sleep(h, seconds)
    h.resume(EARLY + dt.timedelta(seconds=1))
    assert len(moments) == 3 and min(moments) >= TICK


def test_a_clock_that_does_not_reach_the_tick_creates_nothing_early(
    h: DaemonHarness, moments: list[dt.datetime]
) -> None:
    h.apply_git(every_minute(2), T0)
    h.daemon.applier.sleep = lambda seconds: None  # the clock does not move (stepped back, say)
    h.fire_ticks(EARLY)
    assert moments == []
    h.resume(TICK)
    assert moments == [TICK, TICK]
