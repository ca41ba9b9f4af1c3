"""Schedules and their ticks: a tick is a unique (operation, instant) row, so it fires once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from reconciler.model import OpKey
from reconciler.statuses import (
    DONE,
    RUN_STATUSES,
)
from reconciler.tracking.db import table
from reconciler.tracking.errors import NotFound
from reconciler.tracking.runs import RunsMixin
from reconciler.tracking.tables_runs import (
    Operation,
    Repo,
    Run,
    ScheduleState,
    ScheduleTick,
)

_t = table
# Schedules per `IN (...)` list: well under what SQLite and PostgreSQL take in one statement.
_CHUNK = 500


class DueTick(NamedTuple):
    op_key: str
    tick_at: dt.datetime
    last_tick_at: dt.datetime | None
    run_count: int
    operation_id: int


class TickRow(NamedTuple):
    """An instant of a schedule as a tick decision handled it: `fired` (its run starts),
    `skipped` (its run is recorded skipped, with the reason) or `missed` (no run; the row stands
    for `missed_count` ticks from `tick_at` to `missed_until`)."""

    operation_id: int
    tick_at: dt.datetime
    outcome: str = "fired"
    reason: str | None = None
    message: str | None = None
    missed_until: dt.datetime | None = None
    missed_count: int | None = None


class ScheduleMove(NamedTuple):
    """Where a schedule stands once its due ticks are handled: its watermark, its next tick
    (None: it has none, or it ended) and how many runs the decision fired."""

    operation_id: int
    last_tick_at: dt.datetime | None
    next_tick_at: dt.datetime | None
    fired: int = 0


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


# The statements run once per schedule of a batch, built once (SQLAlchemy compiles them once).
def _move_statement() -> Any:
    st = _t(ScheduleState)
    return (
        update(st)
        .where(st.c.operation_id == bindparam("b_id"))
        .values(
            last_tick_at=bindparam("b_last", type_=st.c.last_tick_at.type),
            next_tick_at=bindparam("b_next", type_=st.c.next_tick_at.type),
            run_count=st.c.run_count + bindparam("b_fired"),
            updated_at=bindparam("b_now", type_=st.c.updated_at.type),
        )
    )


def _attach_statement() -> Any:
    t = _t(ScheduleTick)
    return (
        update(t)
        .where(t.c.operation_id == bindparam("b_id"), t.c.tick_at == bindparam("b_at", type_=t.c.tick_at.type))
        .values(run_id=bindparam("b_run"))
    )


_MOVE_SCHEDULE, _ATTACH_TICK_RUN = _move_statement(), _attach_statement()


class SchedulesMixin(RunsMixin):
    def set_schedule(
        self, op_key: str, next_tick_at: dt.datetime | None, now: dt.datetime, session: Session | None = None
    ) -> ScheduleState:
        """Register (or re-register) an operation's schedule; its tick history is kept."""
        with self._tx(session) as s:
            op_id = self._op_id(s, op_key)
            self.insert_ignore(
                s,
                ScheduleState,
                {"operation_id": op_id, "next_tick_at": next_tick_at, "run_count": 0, "updated_at": now},
                ["operation_id"],
            )
            state = s.execute(
                select(ScheduleState).where(_t(ScheduleState).c.operation_id == op_id).with_for_update()
            ).scalar_one()
            state.next_tick_at, state.updated_at = next_tick_at, now
            s.add(state)
            s.flush()
            return state

    def schedule_state(self, op_key: str, session: Session | None = None) -> ScheduleState | None:
        with self._read(session) as s:
            return s.execute(
                select(ScheduleState).join(Operation).where(_t(Operation).c.op_key == op_key)
            ).scalar_one_or_none()

    def remove_schedule(self, op_key: str, session: Session | None = None) -> None:
        """Stop ticking; fired ticks stay recorded so a re-added schedule cannot fire them again."""
        with self._tx(session) as s:
            op_id = self._op_id(s, op_key)
            state = s.get(ScheduleState, op_id)
            if state is not None:
                s.delete(state)
                s.flush()

    def due_ticks(self, now: dt.datetime, limit: int | None = None, session: Session | None = None) -> list[DueTick]:
        """Schedules whose next tick is at or before `now`, most overdue first."""
        st, o = _t(ScheduleState).c, _t(Operation).c
        stmt = (
            select(o.op_key, st.next_tick_at, st.last_tick_at, st.run_count, st.operation_id)
            .join_from(_t(ScheduleState), _t(Operation), st.operation_id == o.id)
            .where(st.next_tick_at.is_not(None), st.next_tick_at <= now)
            .order_by(st.next_tick_at, o.op_key)
            .limit(limit)
        )
        with self._read(session) as s:
            return [DueTick(*row) for row in s.execute(stmt).all()]

    def claim_ticks(self, rows: Sequence[TickRow], now: dt.datetime, session: Session) -> set[tuple[int, dt.datetime]]:
        """Record each tick once, whatever its outcome, in one statement per few hundred:
        the (operation id, instant) of the rows that went in. An instant recorded before (by
        another daemon, a repeated call, or a schedule removed and added again) is left as it
        was and not returned: whoever gets a fired tick back is the one that fires it."""
        values = [{**row._asdict(), "claimed_at": now} for row in rows]
        inserted = self.insert_ignore_rows(
            session, ScheduleTick, values, ["operation_id", "tick_at"], returning=["operation_id", "tick_at"]
        )
        return {(int(op_id), at) for op_id, at in inserted}

    def attach_tick_runs(self, links: Sequence[tuple[int, dt.datetime, int]], session: Session) -> None:
        """Remember which run each (operation id, instant, run id) tick created: one statement,
        executed for every link. The ticks are the caller's, claimed in this transaction."""
        if links:
            session.connection().execute(
                _ATTACH_TICK_RUN, [{"b_id": op_id, "b_at": at, "b_run": run_id} for op_id, at, run_id in links]
            )

    def skip_ticks_of(self, runs: Mapping[str, tuple[str, str]], session: Session | None = None) -> None:
        """The ticks these runs were recorded for, taken back before their time: skipped, with
        the (reason, message) given per run name."""
        if not runs:
            return
        t, r = _t(ScheduleTick), _t(Run)
        stmt = (
            update(t)
            .where(t.c.run_id == select(r.c.id).where(r.c.name == bindparam("b_name")).scalar_subquery())
            .values(outcome="skipped", reason=bindparam("b_reason"), message=bindparam("b_message"))
        )
        params = [{"b_name": name, "b_reason": why[0], "b_message": why[1]} for name, why in runs.items()]
        with self._tx(session) as s:
            s.connection().execute(stmt, params)

    def advance_schedules(self, moves: Sequence[ScheduleMove], now: dt.datetime, session: Session) -> None:
        """Move each schedule to its new watermark and next tick, counting the runs fired: one
        statement, executed for every schedule (their rows are locked by the caller)."""
        if moves:
            session.connection().execute(
                _MOVE_SCHEDULE,
                [
                    {
                        "b_id": m.operation_id,
                        "b_last": m.last_tick_at,
                        "b_next": m.next_tick_at,
                        "b_fired": m.fired,
                        "b_now": now,
                    }
                    for m in moves
                ],
            )

    def ticks(self, op_key: str, session: Session | None = None) -> list[ScheduleTick]:
        with self._read(session) as s:
            stmt = (
                select(ScheduleTick)
                .join(Operation)
                .where(_t(Operation).c.op_key == op_key)
                .order_by(_t(ScheduleTick).c.tick_at)
            )
            return list(s.execute(stmt).scalars())

    def schedules(self, repo: str | None = None, session: Session | None = None) -> list[tuple[str, ScheduleState]]:
        """Registered schedules with their operation key, for `reconciler schedules list`."""
        o = _t(Operation).c
        stmt = (
            select(o.op_key, ScheduleState)
            .join_from(_t(ScheduleState), _t(Operation), _t(ScheduleState).c.operation_id == o.id)
            .order_by(o.op_key)
        )
        if repo is not None:
            stmt = stmt.where(o.repo_id == select(_t(Repo).c.id).where(_t(Repo).c.name == repo).scalar_subquery())
        with self._read(session) as s:
            return [(str(key), state) for key, state in s.execute(stmt)]

    def schedule_options(
        self, repo: str, session: Session | None = None
    ) -> dict[str, tuple[str | None, str | None, float | None, str | None]]:
        """(zone, namespace, starting deadline in seconds, concurrency) each of `repo`'s schedules
        was registered with, by op key: what a reconcile compares with the repo config."""
        st, o, r = _t(ScheduleState).c, _t(Operation).c, _t(Repo).c
        stmt = (
            select(o.op_key, st.tz, st.namespace, st.starting_deadline_seconds, st.concurrency)
            .join_from(_t(ScheduleState), _t(Operation), st.operation_id == o.id)
            .where(o.repo_id == select(r.id).where(r.name == repo).scalar_subquery())
        )
        with self._read(session) as s:
            return {str(key): (tz, ns, deadline, policy) for key, tz, ns, deadline, policy in s.execute(stmt).all()}

    def lock_schedules(self, operation_ids: Iterable[int], session: Session) -> list[tuple[str, ScheduleState]]:
        """The schedules of these operations with their op keys, locked for the rest of `session`
        (one decision per schedule at a time), in operation id order: two transactions locking
        overlapping sets take the rows in the same order, so neither waits for the other in a
        circle. Operations without a schedule are left out."""
        st, o = _t(ScheduleState), _t(Operation).c
        found: list[tuple[str, ScheduleState]] = []
        for chunk in _chunks(sorted(set(operation_ids))):
            stmt = (
                select(o.op_key, ScheduleState)
                .join_from(st, _t(Operation), st.c.operation_id == o.id)
                .where(st.c.operation_id.in_(chunk))
                .order_by(st.c.operation_id)
                .with_for_update(of=st)
                .execution_options(populate_existing=True)
            )
            found += [(str(key), state) for key, state in session.execute(stmt).all()]
        return found

    def ensure_schedules(
        self, op_keys: Iterable[str | OpKey], now: dt.datetime, session: Session
    ) -> list[tuple[str, ScheduleState]]:
        """The schedule rows of these tracked operations, created empty where new, locked (see
        `lock_schedules`). NotFound names an operation that is not tracked."""
        keys = {str(k) for k in op_keys}
        ids = self.op_ids(keys, session=session)
        missing = sorted(keys - ids.keys())
        if missing:
            raise NotFound(f"operation {missing[0]} is not tracked")
        self.insert_ignore_rows(
            session,
            ScheduleState,
            [{"operation_id": i, "run_count": 0, "updated_at": now} for i in sorted(ids.values())],
            ["operation_id"],
        )
        return self.lock_schedules(ids.values(), session)

    def delete_schedules(self, operation_ids: Iterable[int], session: Session) -> None:
        """Forget these schedules; their ticks stay recorded, so a schedule added again later
        cannot fire them a second time."""
        st = _t(ScheduleState)
        for chunk in _chunks(sorted(set(operation_ids))):
            session.execute(delete(st).where(st.c.operation_id.in_(chunk)))

    def schedule_runs(self, operation_ids: Iterable[int], session: Session) -> dict[int, list[tuple[str, str]]]:
        """(name, status) of each schedule's fired runs a tick decision looks at, by operation id:
        the active ones and the latest, oldest first. Two statements for all the schedules."""
        t, r = _t(ScheduleTick).c, _t(Run).c
        active = sorted(str(s) for s in RUN_STATUSES - DONE)
        found: dict[int, dict[str, tuple[dt.datetime, str]]] = {}
        for chunk in _chunks(sorted(set(operation_ids))):
            fired = t.operation_id.in_(chunk), t.outcome == "fired"
            running = (
                select(t.operation_id, r.name, r.status, t.tick_at)
                .join_from(_t(ScheduleTick), _t(Run), t.run_id == r.id)
                .where(*fired, r.status.in_(active))
            )
            newest = (
                select(t.operation_id, func.max(t.tick_at).label("tick_at")).where(*fired).group_by(t.operation_id)
            ).subquery()
            latest = (
                select(t.operation_id, r.name, r.status, t.tick_at)
                .join_from(_t(ScheduleTick), _t(Run), t.run_id == r.id)
                .join(newest, (newest.c.operation_id == t.operation_id) & (newest.c.tick_at == t.tick_at))
            )
            for stmt in (running, latest):
                for op_id, name, status, at in session.execute(stmt):
                    found.setdefault(int(op_id), {})[str(name)] = (at, str(status))
        return {
            op_id: [(name, status) for name, (_, status) in sorted(runs.items(), key=lambda item: item[1][0])]
            for op_id, runs in found.items()
        }

    def next_ticks(self, after: dt.datetime | None = None, session: Session | None = None) -> dict[str, dt.datetime]:
        """The earliest next tick of each repo's schedules (strictly after `after`, when given)."""
        st, o, r = _t(ScheduleState).c, _t(Operation).c, _t(Repo).c
        stmt = (
            select(r.name, func.min(st.next_tick_at))
            .join_from(_t(ScheduleState), _t(Operation), st.operation_id == o.id)
            .join(_t(Repo), o.repo_id == r.id)
            .where(st.next_tick_at.is_not(None))
            .group_by(r.name)
        )
        if after is not None:
            stmt = stmt.where(st.next_tick_at > after)
        with self._read(session) as s:
            rows = s.execute(stmt).all()
        out: dict[str, dt.datetime] = {}
        for repo, value in rows:
            # min() loses the column type on SQLite: the value may come back as text or naive.
            if isinstance(value, str):
                value = dt.datetime.fromisoformat(value)
            assert isinstance(value, dt.datetime)
            out[str(repo)] = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return out

    def tracked_schedules(self, repo: str, session: Session | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """(op key, spec hash, schedule section) of every schedule registered for `repo`."""
        o, r, st = _t(Operation).c, _t(Repo).c, _t(ScheduleState).c
        in_repo = o.repo_id == select(r.id).where(r.name == repo).scalar_subquery()
        stmt = (
            select(o.op_key, st.spec_hash, st.schedule)
            .join_from(_t(ScheduleState), _t(Operation), st.operation_id == o.id)
            .where(in_repo, st.spec_hash.is_not(None))
        )
        with self._read(session) as s:
            return [(str(k), str(h), dict(sched or {})) for k, h, sched in s.execute(stmt).all()]
