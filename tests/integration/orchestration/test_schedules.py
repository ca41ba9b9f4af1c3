"""Schedules over the tracking DB: registration follows Git, ticks fire exactly once (repeated calls,
two orchestrators, a crash on either side of the commit), missed ticks, concurrency policies,
dependsOnPast and maxRuns."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import OpKey
from reconciler.orchestration import Orchestrator, ScheduleOptions
from reconciler.plan import ActionKind, changes
from reconciler.scheduling.ticks import ConcurrencyPolicy
from reconciler.tracking import Store
from tests.integration.orchestration.conftest import T0
from tests.integration.orchestration.due_worker import fire_hours
from tests.integration.orchestration.helpers import Daemon

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


def test_registration_follows_git(daemon: Daemon) -> None:
    actions = daemon.apply_git(scheduled(HOURLY), "c1", T0)
    assert [a.action for a in changes(actions)] == [ActionKind.REGISTER_SCHEDULE]
    schedules, _ = daemon.orch.tracked("r")
    assert schedules[KEY].schedule == {"kind": "cron", "cron": "0 * * * *"}
    assert daemon.orch.next_wakeup() == T0 + H

    assert changes(daemon.apply_git(scheduled(HOURLY), "c2", T0 + dt.timedelta(minutes=5))) == []

    later = T0 + dt.timedelta(minutes=10)
    actions = daemon.apply_git(scheduled("  {kind: cron, cron: '30 * * * *'}"), "c3", later)
    assert [a.action for a in changes(actions)] == [ActionKind.UPDATE_SCHEDULE]
    assert daemon.orch.next_wakeup() == T0 + dt.timedelta(minutes=30)

    # The spec alone changes: the schedule keeps its ticks, and the next tick runs the new spec.
    actions = daemon.apply_git(scheduled("  {kind: cron, cron: '30 * * * *'}", "echo new"), "c4", later)
    assert [a.reason for a in changes(actions)] == ["spec changed; ticks use the new spec"]
    assert daemon.orch.next_wakeup() == T0 + dt.timedelta(minutes=30)
    [run] = daemon.orch.due(T0 + dt.timedelta(minutes=30)).new_runs
    assert run.request.effective["run"]["container"]["command"] == ["sh", "-c", "echo new"]
    assert run.request.commit == "c4" and run.request.cause_id == "schedule:2025-03-03T00:30:00Z"

    actions = daemon.apply_git({}, "c5", T0 + 2 * H)
    assert [a.action for a in changes(actions)] == [ActionKind.REMOVE_SCHEDULE]
    assert daemon.orch.tracked("r") == ({}, {})
    assert daemon.orch.next_wakeup() is None
    assert daemon.orch.due(T0 + 5 * H).empty
    # The 01:30 tick was due and unhandled when the schedule went away: recorded, not dropped.
    assert ticks(daemon.store)[-1] == ("missed", T0 + dt.timedelta(hours=1, minutes=30), 1)


def test_a_tick_fires_once_however_often_it_is_looked_at(daemon: Daemon, db_url: str) -> None:
    daemon.apply_git(scheduled(HOURLY), "c1", T0)
    at = T0 + H
    [run] = daemon.orch.due(at).new_runs
    assert daemon.orch.due(at).empty
    assert daemon.orch.due(at + dt.timedelta(minutes=1)).empty
    other = Store.open(db_url)
    try:
        assert Orchestrator(other, backend_name="local").due(at).empty
    finally:
        other.close()
    assert [r.name for r in daemon.store.runs_by_op(str(KEY))] == [run.request.name]
    [tick] = daemon.store.ticks(str(KEY))
    assert (tick.outcome, tick.tick_at) == ("fired", at) and tick.run_id is not None
    assert daemon.orch.next_wakeup() == at + H


def test_two_orchestrators_racing_for_the_same_ticks_fire_each_once(daemon: Daemon, db_url: str) -> None:
    daemon.apply_git(scheduled(HOURLY), "c1", T0)
    stores = [Store.open(db_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    fired: list[list[str]] = [[], []]

    def worker(i: int) -> None:
        orch = Orchestrator(stores[i], backend_name="local")
        barrier.wait(timeout=30)
        for hour in range(1, 6):
            fired[i] += [n.request.name for n in orch.due(T0 + hour * H).new_runs]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for s in stores:
            s.close()
    assert not any(t.is_alive() for t in threads)
    names = fired[0] + fired[1]
    assert len(names) == len(set(names)) == 5
    assert sorted(names) == sorted(r.name for r in daemon.store.runs_by_op(str(KEY)))


def test_a_crash_after_the_claim_neither_doubles_nor_drops_the_run(daemon: Daemon, store: Store) -> None:
    daemon.apply_git(scheduled(HOURLY), "c1", T0)
    lost = daemon.orch.due(T0 + H)  # committed, then the daemon dies before submitting
    [run] = lost.new_runs

    restarted = daemon.orchestrator()
    assert restarted.due(T0 + H).empty
    [again] = restarted.resume(T0 + H).new_runs
    assert again.request == run.request
    daemon.record(run.request.name, "queued", T0 + H)  # submitted this time
    assert restarted.resume(T0 + H).new_runs == ()


def test_a_crash_before_the_commit_leaves_the_tick_to_fire_later(
    daemon: Daemon, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon.apply_git(scheduled(HOURLY), "c1", T0)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as m:
        m.setattr(Store, "attach_tick_run", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            daemon.orch.due(T0 + H)
    assert store.ticks(str(KEY)) == [] and store.runs_by_op(str(KEY)) == []
    [run] = daemon.orchestrator().due(T0 + H + dt.timedelta(minutes=2)).new_runs
    assert run.request.cause_id == "schedule:2025-03-03T01:00:00Z"


def test_missed_ticks_after_downtime_catch_up_once_within_the_deadline(store: Store) -> None:
    daemon = Daemon(store, ScheduleOptions(starting_deadline=dt.timedelta(minutes=30)))
    daemon.apply_git(scheduled(HOURLY), "c1", T0)
    work = daemon.orch.due(T0 + 5 * H + dt.timedelta(minutes=10))
    [run] = work.new_runs
    assert run.request.cause_id == "schedule:2025-03-03T05:00:00Z"
    assert ticks(store) == [("missed", T0 + H, 4), ("fired", T0 + 5 * H, None)]
    assert [n.reason for n in work.notices] == ["MissedTicks"]

    # Down again past the deadline: nothing runs, every tick is on record.
    assert daemon.orch.due(T0 + 8 * H + dt.timedelta(minutes=45)).new_runs == ()
    assert ticks(store)[-1] == ("missed", T0 + 6 * H, 3)
    assert daemon.orch.next_wakeup() == T0 + 9 * H


def test_forbid_skips_a_tick_while_the_previous_run_is_active(store: Store) -> None:
    daemon = Daemon(store, ScheduleOptions(concurrency=ConcurrencyPolicy.FORBID))
    daemon.apply_git(scheduled(HOURLY), "c1", T0)
    [first] = daemon.orch.due(T0 + H).new_runs
    daemon.record(first.request.name, "running", T0 + H)
    assert daemon.orch.due(T0 + 2 * H).new_runs == ()
    skipped = [r for r in store.runs_by_op(str(KEY)) if r.name != first.request.name]
    assert [(str(r.status), r.cause_id) for r in skipped] == [("skipped", "schedule:2025-03-03T02:00:00Z")]
    assert store.history(skipped[0])[-1].reason == "ConcurrencyForbid"
    daemon.record(first.request.name, "succeeded", T0 + 2 * H + dt.timedelta(minutes=5))
    [third] = daemon.orch.due(T0 + 3 * H).new_runs
    assert third.request.cause_id == "schedule:2025-03-03T03:00:00Z"
    assert [o for o, _, _ in ticks(store)] == ["fired", "skipped", "fired"]


def test_replace_stops_the_active_run_and_fires(store: Store) -> None:
    daemon = Daemon(store, ScheduleOptions(concurrency=ConcurrencyPolicy.REPLACE))
    daemon.apply_git(scheduled(HOURLY), "c1", T0)
    [first] = daemon.orch.due(T0 + H).new_runs
    daemon.record(first.request.name, "running", T0 + H)
    work = daemon.orch.due(T0 + 2 * H)
    assert work.stops == (first.request.name,)
    assert [n.request.cause_id for n in work.new_runs] == ["schedule:2025-03-03T02:00:00Z"]


def test_depends_on_past_skips_after_a_failure(daemon: Daemon, store: Store) -> None:
    daemon.apply_git(scheduled("  {kind: cron, cron: '0 * * * *', dependsOnPast: true}"), "c1", T0)
    [first] = daemon.orch.due(T0 + H).new_runs
    daemon.finish(first.request.name, "succeeded", T0 + H)
    [second] = daemon.orch.due(T0 + 2 * H).new_runs
    daemon.finish(second.request.name, "failed", T0 + 2 * H)
    assert daemon.orch.due(T0 + 3 * H).new_runs == ()
    assert daemon.orch.due(T0 + 4 * H).new_runs == ()  # still the failed run before it
    reasons = [(t.outcome, t.reason) for t in store.ticks(str(KEY))]
    assert reasons[-2:] == [("skipped", "DependsOnPast"), ("skipped", "DependsOnPast")]


def test_max_runs_ends_the_schedule(daemon: Daemon) -> None:
    daemon.apply_git(scheduled("  {kind: interval, frequency: 600, maxRuns: 2}"), "c1", T0)
    # An interval without startAt counts from registration; the first tick is one interval later.
    assert daemon.orch.next_wakeup() == T0 + dt.timedelta(minutes=10)
    fired = [
        n.request.cause_id
        for step in range(0, 5)
        for n in daemon.orch.due(T0 + step * dt.timedelta(minutes=10)).new_runs
    ]
    assert fired == ["schedule:2025-03-03T00:10:00Z", "schedule:2025-03-03T00:20:00Z"]
    assert daemon.orch.next_wakeup() is None


def test_two_processes_fire_each_tick_once(daemon: Daemon, db_url: str, tmp_path: Path) -> None:
    daemon.apply_git(scheduled(HOURLY), "c1", T0)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    outs = [tmp_path / f"fired-{n}.txt" for n in range(2)]
    procs = [ctx.Process(target=fire_hours, args=(db_url, T0, 6, barrier, str(out))) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0, f"worker exited {p.exitcode}"
    names = [n for out in outs for n in out.read_text().split()]
    assert len(names) == len(set(names)) == 6, "a tick fired twice or not at all"
    assert sorted(names) == sorted(r.name for r in daemon.store.runs_by_op(str(KEY)))
