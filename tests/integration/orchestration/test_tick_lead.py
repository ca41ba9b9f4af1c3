"""Ticks decided ahead of their time (`ticking.TICK_LEAD`), on the production daemon: a pass a few
seconds before a tick claims it and records its run, and the run's object is created when the
tick is due, never before, whether the same pass waits for it or a resume after a restart does;
a schedule whose decision could change in between (forbid, dependsOnPast) waits until it is due;
each tick still fires once.

The applier sleeps until a held run is due; here its sleep moves the harness's clock (nothing
waits in real time), and the scripted backend notes the clock at each submit."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from reconciler.model import RunRequest
from reconciler.orchestration import ticking
from reconciler.scheduling.ticks import tick_cause_id
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


# --- a schedule changed or removed between the decision and its tick -------------------------

TICK_000 = "r:ops/tick-000.yaml#tick-000"
TICK_001 = "r:ops/tick-001.yaml#tick-001"


def commit_while_held(h: DaemonHarness, files: dict[str, str]) -> None:
    """The applier's first wait for a held tick: `files` are committed and reconciled (a push in
    the seconds before the tick), then the clock moves on as it would."""
    done: list[bool] = []

    def sleep_then(seconds: float) -> None:
        if not done:
            done.append(True)
            h.apply_git(files, h.clock() + dt.timedelta(seconds=1))
        sleep(h, seconds)

    h.daemon.applier.sleep = sleep_then


def tick_run(h: DaemonHarness, op_key: str, at: dt.datetime = TICK) -> str:
    [run] = [r for r in h.store.runs_by_op(op_key) if r.cause_id == tick_cause_id(at)]
    return run.name


def test_a_schedule_removed_while_its_tick_is_held_does_not_run_it(
    h: DaemonHarness, moments: list[dt.datetime]
) -> None:
    h.apply_git(every_minute(2), T0)
    commit_while_held(h, every_minute(1))  # tick-001 removed from Git
    h.fire_ticks(EARLY)
    assert [r.op.name for r in h.submitted] == ["tick-000"] and min(moments) >= TICK
    taken = h.run(tick_run(h, TICK_001))
    assert (taken.status, taken.backend_ref) == ("skipped", None)
    last = h.store.history(taken)[-1]
    assert (last.status, last.reason) == ("skipped", "ScheduleRemoved")
    assert last.message == f"its schedule was removed from Git before its tick at {TICK.isoformat()}"
    [tick] = h.store.ticks(TICK_001)
    assert (tick.outcome, tick.reason) == ("skipped", "ScheduleRemoved")
    # Nothing brings it back: not a resume, not the pass at the tick.
    h.resume(TICK + dt.timedelta(seconds=1))
    h.fire_ticks(TICK + M)
    assert "tick-001" not in [r.op.name for r in h.submitted]


def test_a_spec_changed_while_its_tick_is_held_skips_that_tick_and_the_next_runs_the_new_spec(
    h: DaemonHarness, moments: list[dt.datetime]
) -> None:
    h.apply_git(every_minute(2), T0)
    changed = every_minute(2)
    changed["ops/tick-000.yaml"] = changed["ops/tick-000.yaml"].replace('"echo 0"', '"echo changed"')
    commit_while_held(h, changed)
    h.fire_ticks(EARLY)
    assert [r.op.name for r in h.submitted] == ["tick-001"]  # the unchanged one runs at its tick
    taken = h.run(tick_run(h, TICK_000))
    last = h.store.history(taken)[-1]
    assert (taken.status, last.reason) == ("skipped", "ScheduleChanged")
    assert (last.message or "").startswith("its schedule changed (commit ")
    h.fire_ticks(TICK + M)
    [new] = [r for r in h.by_op("tick-000")]
    assert new.cause_id == tick_cause_id(TICK + M)
    assert "echo changed" in json.dumps(new.effective)


def test_a_change_that_comes_as_the_run_is_handed_over_leaves_it_running(
    h: DaemonHarness, moments: list[dt.datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tick came: the run is being submitted when a removal is reconciled by another
    worker whose pass began just before the tick (its `now` is a second short of it, so it
    asks for the run back). It is not taken back; the removal counts from the next tick."""
    h.apply_git(every_minute(1), T0)
    real = h.scripted.submit
    removed: list[bool] = []

    def submit(run: RunRequest) -> str:
        if not removed:
            removed.append(True)
            at = h.clock()
            h.apply_git({}, at - dt.timedelta(seconds=1))
            h.clock.set(at)
        return real(run)

    monkeypatch.setattr(h.scripted, "submit", submit)
    h.fire_ticks(EARLY)
    assert removed == [True] and [r.op.name for r in h.submitted] == ["tick-000"]
    run = h.run(tick_run(h, TICK_000))
    assert run.status != "skipped" and run.backend_ref is not None
    assert [t.outcome for t in h.store.ticks(TICK_000)] == ["fired"]


def test_a_run_recorded_ahead_and_not_yet_held_is_taken_back_and_a_resume_leaves_it(
    h: DaemonHarness, moments: list[dt.datetime]
) -> None:
    h.apply_git(every_minute(2), T0)
    works = list(h.daemon.orchestration.due(EARLY))  # decided and recorded; the daemon then stops
    assert sum(len(w.new_runs) for w in works) == 2
    restarted = h.restart()
    restarted.applier.sleep = lambda seconds: sleep(h, seconds)
    h.apply_git(every_minute(1), EARLY + dt.timedelta(seconds=1))
    assert h.status(tick_run(h, TICK_001)) == "skipped"
    h.resume(EARLY + dt.timedelta(seconds=2))
    assert [r.op.name for r in h.submitted] == ["tick-000"] and min(moments) >= TICK
