"""Ticks and registrations in batches, on the production daemon: a pass decides a batch of due
schedules in one transaction and submits its runs before deciding the next; the statements a batch
makes on the schedule tables, and a registration's, do not grow with the number of schedules; a
batch that fails rolls back whole and the next pass fires its ticks, each once; two daemons
racing over many schedules in batches fire each tick once."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from reconciler.model import OpKey
from reconciler.orchestration import NewRun, Notice, StatusUpdate, Work, registry, ticking
from reconciler.tracking import Store
from tests.infra.daemon import DaemonHarness
from tests.integration.orchestration.conftest import T0, race_two_daemons

M = dt.timedelta(minutes=1)
SCHEDULE_TABLES = re.compile(r"\bschedule_(state|tick)\b")


def every_minute(n: int) -> dict[str, str]:
    """`n` operations ticking every minute."""
    return {
        f"ops/tick-{i:03d}.yaml": f"""
            version: 1.1
            kind: operation
            name: tick-{i:03d}
            schedule: {{kind: cron, cron: '* * * * *'}}
            component:
              run:
                kind: job
                container: {{image: busybox, command: [sh, -c, "echo {i}"]}}
            """
        for i in range(n)
    }


class Statements:
    """Counts, on the harness's store, the statements that touch the schedule tables and the
    committed transactions, while `counting` is on."""

    def __init__(self, store: Store) -> None:
        self.on = False
        self.schedule_statements: list[str] = []
        self.commits = 0
        event.listen(store.engine, "before_cursor_execute", self._statement)
        event.listen(store.engine, "commit", self._commit)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.on and SCHEDULE_TABLES.search(statement):
            self.schedule_statements.append(statement.split()[0].upper())

    def _commit(self, _conn: Any) -> None:
        if self.on:
            self.commits += 1

    @contextmanager
    def counting(self) -> Iterator[Statements]:
        self.schedule_statements, self.commits, self.on = [], 0, True
        try:
            yield self
        finally:
            self.on = False


def spy(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, before: Callable[[], None]) -> None:
    """Call `before` each time `owner.name` is called, then the real one."""
    real = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def test_a_pass_submits_each_batchs_runs_before_deciding_the_next(
    h: DaemonHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ticking, "TICK_BATCH", 4)
    h.apply_git(every_minute(10), T0)
    log: list[str] = []
    spy(monkeypatch, Store, "claim_ticks", lambda: log.append("decide"))
    spy(monkeypatch, h.scripted, "submit", lambda: log.append("submit"))
    h.fire_ticks(T0 + M)
    assert log == ["decide", *["submit"] * 4, "decide", *["submit"] * 4, "decide", *["submit"] * 2]
    assert sorted(r.op.name for r in h.submitted) == [f"tick-{i:03d}" for i in range(10)]
    assert {r.cause_id for r in h.submitted} == {"schedule:2025-03-03T00:01:00Z"}


@pytest.mark.parametrize("policy", ["allow", "forbid"])
def test_the_schedule_statements_of_a_batch_do_not_grow_with_it(h: DaemonHarness, policy: str) -> None:
    h.config["r"] = {"schedules": {"concurrency": policy}}
    h.apply_git(every_minute(12), T0)
    counter = Statements(h.store)
    h.fire_ticks(T0 + M)  # every run active from here on: forbid skips the next ticks
    per_pass = []
    for minute in (2, 3):
        with counter.counting():
            h.fire_ticks(T0 + minute * M)
        per_pass.append(counter.schedule_statements)
    # One read of what is due; then, for the whole batch of 12: the rows locked, the runs of the
    # schedules whose policy looks at them (forbid: the active ones and the latest), the ticks
    # claimed, their runs attached, the schedules moved.
    runs = ["SELECT", "SELECT"] if policy == "forbid" else []
    assert per_pass[0] == per_pass[1] == ["SELECT", "SELECT", *runs, "INSERT", "UPDATE", "UPDATE"]
    ticks = h.store.ticks(str(OpKey("r", "ops/tick-000.yaml", "tick-000")))
    if policy == "forbid":
        assert len(h.submitted) == 12
        assert [t.outcome for t in ticks] == ["fired", "skipped", "skipped"]
    else:
        assert len(h.submitted) == 36
        assert [t.outcome for t in ticks] == ["fired", "fired", "fired"]


class AllStatements:
    """Counts every statement run on the store's engine while `counting` is on."""

    def __init__(self, store: Store) -> None:
        self.on = False
        self.statements: list[str] = []
        event.listen(store.engine, "before_cursor_execute", self._statement)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.on:
            self.statements.append(statement.split()[0].upper())


def test_every_statement_of_a_batch_stays_flat_as_it_grows(h: DaemonHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs of a batch's ticks are recorded together (the applier's `record_many`), so the
    whole transaction, runs included, takes as many statements for 40 ticks as for 4."""
    counter = AllStatements(h.store)
    counted: list[list[str]] = []
    real = ticking.fire

    def fire(*args: Any, **kwargs: Any) -> ticking.Batch:
        counter.statements, counter.on = [], True
        try:
            return real(*args, **kwargs)
        finally:
            counter.on = False
            counted.append(counter.statements)

    monkeypatch.setattr(ticking, "fire", fire)
    h.apply_git(every_minute(4), T0)
    h.fire_ticks(T0 + M)
    h.fire_ticks(T0 + 2 * M)
    h.apply_git(every_minute(40), T0 + 2 * M + dt.timedelta(seconds=30))
    h.fire_ticks(T0 + 3 * M)
    h.fire_ticks(T0 + 4 * M)
    assert len(h.submitted) == 2 * 4 + 2 * 40
    small, large = counted[1], counted[3]
    assert small == large, f"statements grow with the batch: {len(small)} for 4 ticks, {len(large)} for 40"
    assert len(small) <= 16, small


def test_a_batch_is_one_transaction(h: DaemonHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ticking, "TICK_BATCH", 5)
    h.apply_git(every_minute(12), T0)
    counter = Statements(h.store)
    commits: list[int] = []
    real = ticking.fire

    def fire(*args: Any, **kwargs: Any) -> ticking.Batch:
        with counter.counting():
            batch = real(*args, **kwargs)
        commits.append(counter.commits)
        return batch

    monkeypatch.setattr(ticking, "fire", fire)
    h.fire_ticks(T0 + M)
    assert commits == [1, 1, 1]
    assert len(h.submitted) == 12


@pytest.mark.parametrize("n", [3, 24])
def test_registering_and_removing_schedules_takes_a_fixed_number_of_statements(h: DaemonHarness, n: int) -> None:
    counter = Statements(h.store)
    real = h.daemon.orchestration.sync
    seen: list[tuple[list[str], int]] = []

    def sync(*args: Any, **kwargs: Any) -> Work:
        with counter.counting():
            work = real(*args, **kwargs)
        seen.append((counter.schedule_statements, counter.commits))
        return work

    h.daemon.orchestration.sync = sync  # type: ignore[method-assign]
    h.apply_git(every_minute(n), T0)
    h.apply_git({}, T0 + 30 * M)  # every tick due since the last minute is recorded missed
    registered, removed = seen
    # Registering: the rows inserted where new, locked, and written, one statement each.
    assert registered == (["INSERT", "SELECT", "UPDATE"], 1)
    # Removing: the rows locked, the missed ticks recorded, the rows deleted.
    assert removed == (["SELECT", "INSERT", "DELETE"], 1)
    missed = h.store.ticks(str(OpKey("r", "ops/tick-000.yaml", "tick-000")))
    assert [(t.outcome, t.missed_count) for t in missed] == [("missed", 30)]


def test_registration_goes_a_batch_per_transaction(h: DaemonHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "REGISTER_BATCH", 4)
    batches: list[int] = []
    real = registry.register_schedules

    def register(ctx: Any, ops: Any, now: dt.datetime) -> Any:
        batches.append(len(ops))
        return real(ctx, ops, now)

    monkeypatch.setattr(registry, "register_schedules", register)
    h.apply_git(every_minute(10), T0)
    assert batches == [4, 4, 2]
    assert len(h.store.schedules("r")) == 10
    h.fire_ticks(T0 + M)
    assert len(h.submitted) == 10


def test_a_failed_batch_rolls_back_whole_and_fires_later_once(
    h: DaemonHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ticking, "TICK_BATCH", 4)
    h.apply_git(every_minute(10), T0)
    real = Store.attach_tick_runs
    calls: list[int] = []

    def attach(self: Store, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Store, "attach_tick_runs", attach)
        with pytest.raises(RuntimeError, match="power cut"):
            h.fire_ticks(T0 + M)
    # The first batch was committed and submitted; nothing of the second one was kept.
    assert len(h.submitted) == 4
    assert sum(len(h.store.runs_by_op(f"r:ops/tick-{i:03d}.yaml#tick-{i:03d}")) for i in range(10)) == 4
    h.restart()
    h.fire_ticks(T0 + M + dt.timedelta(seconds=20))
    names = [r.name for r in h.submitted]
    assert len(names) == len(set(names)) == 10
    assert {r.cause_id for r in h.submitted} == {"schedule:2025-03-03T00:01:00Z"}


def test_a_repo_lost_during_a_pass_is_left_from_the_next_batch_on(
    h: DaemonHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sharding: ownership is asked again for each batch, so a pass that outlasts the repo's lease
    stops at the next batch (rather than have the fence refuse that batch whole, other repos'
    schedules with it); the new owner fires the rest, each once."""
    monkeypatch.setattr(ticking, "TICK_BATCH", 4)
    h.apply_git(every_minute(10), T0)
    held = [True]
    orchestration, applier = h.daemon.orchestration, h.daemon.applier
    for work in orchestration.due(T0 + M, lambda repo: held[0]):
        applier.apply_work(work, T0 + M)
        held[0] = False  # the lease moved on once the first batch was handled
    assert len(h.submitted) == 4
    due_left = h.store.due_ticks(T0 + M)
    assert len(due_left) == 6
    for work in orchestration.due(T0 + M, lambda repo: True):  # the new owner's pass
        applier.apply_work(work, T0 + M)
    names = [r.name for r in h.submitted]
    assert len(names) == len(set(names)) == 10


def test_two_daemons_racing_in_batches_fire_each_tick_once(h: DaemonHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ticking, "TICK_BATCH", 3)
    h.apply_git(every_minute(20), T0)
    names = race_two_daemons(h, [T0 + minute * M for minute in range(1, 4)], timeout=300)
    assert len(names) == len(set(names)) == 60, "a tick fired twice or not at all"


def test_work_merges_in_order_and_stops_each_run_once() -> None:
    op = OpKey("r", "a.yaml", "a")

    def new(name: str) -> NewRun:
        from reconciler.model import Cause, RunRequest

        return NewRun(RunRequest(name, op, "job", "h", {}, Cause.SCHEDULE, name, "c"))

    parts = [
        Work(new_runs=(new("a"),), stops=("x",)),
        Work(updates=(StatusUpdate("p", "running"),), stops=("y", "x")),
        Work(new_runs=(new("b"),), notices=(Notice("a", "Why", "because"),), stops=("y",)),
    ]
    merged = Work.merge(parts)
    assert [n.request.name for n in merged.new_runs] == ["a", "b"]
    assert merged.stops == ("x", "y")
    assert merged.updates == (StatusUpdate("p", "running"),) and len(merged.notices) == 1
    assert parts[0] + parts[1] + parts[2] == merged
    assert Work.merge([]) == Work() and Work.merge([]).empty
