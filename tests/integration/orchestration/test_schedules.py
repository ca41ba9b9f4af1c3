"""Schedules on the production daemon: registration follows Git, ticks fire exactly once (repeated
calls, two daemons, two processes, a crash on either side of the commit), missed ticks, the repo
config's concurrency policies and starting deadline (kept across a restart), dependsOnPast and
maxRuns."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import OpKey
from reconciler.plan import ActionKind, changes
from reconciler.tracking import Store
from tests.infra.daemon import Clock, DaemonHarness
from tests.infra.scripted_backend import ScriptedBackend
from tests.integration.orchestration.conftest import T0, race_two_daemons
from tests.integration.orchestration.due_worker import fire_hours

KEY = OpKey("r", "ops/n.yaml", "n")
H = dt.timedelta(hours=1)


def scheduled(schedule: str, command: str = "echo hi") -> dict[str, str]:
    return {
        "ops/n.yaml": f"""
            version: 1.1
            kind: operation
            name: n
            schedule:
            {schedule}
            component:
              run:
                kind: job
                container: {{image: busybox, command: [sh, -c, "{command}"]}}
            """
    }


HOURLY = "  {kind: cron, cron: '0 * * * *'}"


def ticks(store: Store) -> list[tuple[str, dt.datetime, Any]]:
    return [(t.outcome, t.tick_at, t.missed_count) for t in store.ticks(str(KEY))]


def test_registration_follows_git(h: DaemonHarness) -> None:
    orchestration = h.daemon.orchestration
    result = h.apply_git(scheduled(HOURLY), T0)
    assert [a.action for a in changes(result.plan)] == [ActionKind.REGISTER_SCHEDULE]
    schedules, _ = orchestration.tracked("r")
    assert schedules[KEY].schedule == {"kind": "cron", "cron": "0 * * * *"}
    assert orchestration.next_wakeup() == T0 + H

    assert changes(h.apply_git(scheduled(HOURLY), T0 + dt.timedelta(minutes=5)).plan) == []

    later = T0 + dt.timedelta(minutes=10)
    result = h.apply_git(scheduled("  {kind: cron, cron: '30 * * * *'}"), later)
    assert [a.action for a in changes(result.plan)] == [ActionKind.UPDATE_SCHEDULE]
    assert orchestration.next_wakeup() == T0 + dt.timedelta(minutes=30)

    # The spec alone changes: the schedule keeps its ticks, and the next tick runs the new spec.
    result = h.apply_git(scheduled("  {kind: cron, cron: '30 * * * *'}", "echo new"), later)
    assert [a.reason for a in changes(result.plan)] == ["spec changed; ticks use the new spec"]
    assert orchestration.next_wakeup() == T0 + dt.timedelta(minutes=30)
    h.fire_ticks(T0 + dt.timedelta(minutes=30))
    [run] = h.submitted
    assert run.effective["run"]["container"]["command"] == ["sh", "-c", "echo new"]
    assert run.commit == result.commit and run.cause_id == "schedule:2025-03-03T00:30:00Z"

    result = h.apply_git({}, T0 + 2 * H)
    assert [a.action for a in changes(result.plan)] == [ActionKind.REMOVE_SCHEDULE]
    assert orchestration.tracked("r") == ({}, {})
    assert orchestration.next_wakeup() is None
    h.fire_ticks(T0 + 5 * H)
    assert h.submitted == [run]
    # The 01:30 tick was due and unhandled when the schedule went away: recorded, not dropped.
    assert ticks(h.store)[-1] == ("missed", T0 + dt.timedelta(hours=1, minutes=30), 1)


def test_a_tick_fires_once_however_often_it_is_looked_at(h: DaemonHarness) -> None:
    h.apply_git(scheduled(HOURLY), T0)
    at = T0 + H
    h.fire_ticks(at)
    h.fire_ticks(at)
    h.fire_ticks(at + dt.timedelta(minutes=1))
    # Another daemon over the same database (its own connections, backend and clock) finds nothing.
    elsewhere = ScriptedBackend()
    h.build(store=h.open_store(), backend=elsewhere, clock=Clock(at)).fire_ticks()
    assert elsewhere.submits == []
    [run] = h.submitted
    assert [r.name for r in h.store.runs_by_op(str(KEY))] == [run.name]
    [tick] = h.store.ticks(str(KEY))
    assert (tick.outcome, tick.tick_at) == ("fired", at) and tick.run_id is not None
    assert h.daemon.orchestration.next_wakeup() == at + H


def test_two_daemons_racing_for_the_same_ticks_fire_each_once(h: DaemonHarness) -> None:
    h.apply_git(scheduled(HOURLY), T0)
    names = race_two_daemons(h, [T0 + hour * H for hour in range(1, 6)], timeout=120)
    assert len(names) == len(set(names)) == 5
    assert sorted(names) == sorted(r.name for r in h.store.runs_by_op(str(KEY)))


def test_a_crash_after_the_claim_neither_doubles_nor_drops_the_run(h: DaemonHarness) -> None:
    sha = h.apply_git(scheduled(HOURLY), T0).commit
    # The tick and its run are committed, then the daemon dies before the backend has the run.
    h.scripted.fail_next_submit(RuntimeError("power cut"))
    with pytest.raises(RuntimeError, match="power cut"):
        h.fire_ticks(T0 + H)
    [recorded] = h.store.runs_by_op(str(KEY))
    assert recorded.backend_ref is None and h.submitted == []

    h.restart()
    h.fire_ticks(T0 + H)
    assert h.submitted == []  # the tick is not fired again
    h.resume(T0 + H)
    [again] = h.submitted
    assert (again.name, again.cause_id, again.commit) == (recorded.name, "schedule:2025-03-03T01:00:00Z", sha)
    assert again.effective == recorded.spec
    h.resume(T0 + H)
    assert len(h.submitted) == 1 and len(h.store.runs_by_op(str(KEY))) == 1


def test_a_crash_before_the_commit_leaves_the_tick_to_fire_later(
    h: DaemonHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h.apply_git(scheduled(HOURLY), T0)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as m:
        m.setattr(Store, "attach_tick_runs", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            h.fire_ticks(T0 + H)
    assert h.store.ticks(str(KEY)) == [] and h.store.runs_by_op(str(KEY)) == [] and h.submitted == []
    h.restart()
    h.fire_ticks(T0 + H + dt.timedelta(minutes=2))
    [run] = h.submitted
    assert run.cause_id == "schedule:2025-03-03T01:00:00Z"


def test_missed_ticks_after_downtime_catch_up_once_within_the_deadline(h: DaemonHarness) -> None:
    h.config["r"] = {"schedules": {"starting_deadline": 1800}}
    h.apply_git(scheduled(HOURLY), T0)
    h.fire_ticks(T0 + 5 * H + dt.timedelta(minutes=10))
    [run] = h.submitted
    assert run.cause_id == "schedule:2025-03-03T05:00:00Z"
    assert ticks(h.store) == [("missed", T0 + H, 4), ("fired", T0 + 5 * H, None)]
    assert [n.split(": ")[1] for n in h.notices] == ["MissedTicks"]

    # Down again past the deadline: nothing runs, every tick is on record.
    h.fire_ticks(T0 + 8 * H + dt.timedelta(minutes=45))
    assert h.submitted == [run]
    assert ticks(h.store)[-1] == ("missed", T0 + 6 * H, 3)
    assert h.daemon.orchestration.next_wakeup() == T0 + 9 * H


def test_forbid_skips_a_tick_while_the_previous_run_is_active(h: DaemonHarness) -> None:
    h.config["r"] = {"schedules": {"concurrency": "forbid"}}
    h.apply_git(scheduled(HOURLY), T0)
    h.fire_ticks(T0 + H)
    [first] = h.submitted
    h.record(first.name, "running", T0 + H)
    h.fire_ticks(T0 + 2 * H)
    assert h.submitted == [first]
    skipped = [r for r in h.store.runs_by_op(str(KEY)) if r.name != first.name]
    assert [(str(r.status), r.cause_id) for r in skipped] == [("skipped", "schedule:2025-03-03T02:00:00Z")]
    assert h.store.history(skipped[0])[-1].reason == "ConcurrencyForbid"
    h.record(first.name, "succeeded", T0 + 2 * H + dt.timedelta(minutes=5))
    h.fire_ticks(T0 + 3 * H)
    [_, third] = h.submitted
    assert third.cause_id == "schedule:2025-03-03T03:00:00Z"
    assert [o for o, _, _ in ticks(h.store)] == ["fired", "skipped", "fired"]


def test_replace_stops_the_active_run_and_fires(h: DaemonHarness) -> None:
    # Per operation: the glob's policy, not the repo's default (allow).
    h.config["r"] = {"schedules": {"ops": {"n*": {"concurrency": "replace"}}}}
    h.apply_git(scheduled(HOURLY), T0)
    h.fire_ticks(T0 + H)
    [first] = h.submitted
    h.record(first.name, "running", T0 + H)
    h.fire_ticks(T0 + 2 * H)
    assert h.stopped == [first.name]
    assert [r.cause_id for r in h.submitted] == ["schedule:2025-03-03T01:00:00Z", "schedule:2025-03-03T02:00:00Z"]


def test_a_restarted_daemon_fires_with_the_repo_configs_options_before_reading_git(h: DaemonHarness) -> None:
    """Right after a start (or while the remote is down) the repo config has not been read yet:
    ticks still follow what it said when the schedule was registered (zone, concurrency, deadline)."""
    h.config["r"] = {
        "timezone": "Europe/Paris",
        "schedules": {"starting_deadline": 600, "ops": {"n": {"concurrency": "forbid"}}},
    }
    h.apply_git(scheduled("  {kind: cron, cron: '0 9 * * *'}"), T0)
    nine_in_paris = T0 + 8 * H  # 09:00 CET is 08:00 UTC on 3 March
    assert h.daemon.orchestration.next_wakeup() == nine_in_paris

    h.restart()  # nothing read from Git by this daemon
    h.fire_ticks(nine_in_paris)
    [first] = h.submitted
    assert first.cause_id == "schedule:2025-03-03T08:00:00Z"
    h.record(first.name, "running")

    h.restart()
    h.fire_ticks(nine_in_paris + 24 * H + dt.timedelta(minutes=5))
    assert h.submitted == [first], "forbid: the first run is still running"
    assert [o for o, _, _ in ticks(h.store)] == ["fired", "skipped"]

    h.restart()
    h.record(first.name, "succeeded")
    h.fire_ticks(nine_in_paris + 48 * H + dt.timedelta(minutes=11))  # past the 10-minute deadline
    assert h.submitted == [first]
    assert ticks(h.store)[-1] == ("missed", nine_in_paris + 48 * H, 1)


def test_a_repo_config_change_alone_reaches_the_registered_schedule(h: DaemonHarness) -> None:
    """The operation is unchanged (the planner has nothing to do for it), its repo config is not:
    the next ticks follow the new zone and the new concurrency policy."""
    h.apply_git(scheduled("  {kind: cron, cron: '0 9 * * *'}"), T0)
    assert h.daemon.orchestration.next_wakeup() == T0 + 9 * H
    h.config["r"] = {"timezone": "Europe/Paris", "schedules": {"concurrency": "forbid"}}
    h.apply_git(scheduled("  {kind: cron, cron: '0 9 * * *'}"), T0 + H)
    nine_in_paris = T0 + 8 * H
    assert h.daemon.orchestration.next_wakeup() == nine_in_paris
    h.fire_ticks(nine_in_paris)
    [first] = h.submitted
    assert first.cause_id == "schedule:2025-03-03T08:00:00Z"
    h.record(first.name, "running")
    h.fire_ticks(nine_in_paris + 24 * H)
    assert h.submitted == [first]
    assert [o for o, _, _ in ticks(h.store)] == ["fired", "skipped"]


def test_depends_on_past_skips_after_a_failure(h: DaemonHarness) -> None:
    h.apply_git(scheduled("  {kind: cron, cron: '0 * * * *', dependsOnPast: true}"), T0)
    h.fire_ticks(T0 + H)
    [first] = h.submitted
    h.finish(first.name, "succeeded", T0 + H)
    h.fire_ticks(T0 + 2 * H)
    [_, second] = h.submitted
    h.finish(second.name, "failed", T0 + 2 * H)
    h.fire_ticks(T0 + 3 * H)
    h.fire_ticks(T0 + 4 * H)  # still the failed run before it
    assert h.submitted == [first, second]
    reasons = [(t.outcome, t.reason) for t in h.store.ticks(str(KEY))]
    assert reasons[-2:] == [("skipped", "DependsOnPast"), ("skipped", "DependsOnPast")]


def test_max_runs_ends_the_schedule(h: DaemonHarness) -> None:
    h.apply_git(scheduled("  {kind: interval, frequency: 600, maxRuns: 2}"), T0)
    # An interval without startAt counts from registration; the first tick is one interval later.
    assert h.daemon.orchestration.next_wakeup() == T0 + dt.timedelta(minutes=10)
    for step in range(0, 5):
        h.fire_ticks(T0 + step * dt.timedelta(minutes=10))
    assert [r.cause_id for r in h.submitted] == ["schedule:2025-03-03T00:10:00Z", "schedule:2025-03-03T00:20:00Z"]
    assert h.daemon.orchestration.next_wakeup() is None


def test_two_processes_fire_each_tick_once(h: DaemonHarness, tmp_path: Path) -> None:
    h.apply_git(scheduled(HOURLY), T0)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    outs = [tmp_path / f"fired-{n}.txt" for n in range(2)]
    settings = h.settings.model_dump(mode="json")
    procs = [ctx.Process(target=fire_hours, args=(settings, T0, 6, barrier, str(out))) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0, f"worker exited {p.exitcode}"
    names = [n for out in outs for n in out.read_text().split()]
    assert len(names) == len(set(names)) == 6, "a tick fired twice or not at all"
    assert sorted(names) == sorted(r.name for r in h.store.runs_by_op(str(KEY)))
