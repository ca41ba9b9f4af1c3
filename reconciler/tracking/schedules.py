"""Schedules and their ticks: a tick is a unique (operation, instant) row, so it fires once."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from reconciler.model import OpKey
from reconciler.statuses import (
    DONE,
    RUN_STATUSES,
)
from reconciler.tracking.db import table
from reconciler.tracking.errors import NotFound
from reconciler.tracking.runs import RunsMixin
from reconciler.tracking.tables import (
    Operation,
    Repo,
    Run,
    ScheduleState,
    ScheduleTick,
)

_t = table


class DueTick(NamedTuple):
    op_key: str
    tick_at: dt.datetime
    last_tick_at: dt.datetime | None
    run_count: int


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
            select(o.op_key, st.next_tick_at, st.last_tick_at, st.run_count)
            .join_from(_t(ScheduleState), _t(Operation), st.operation_id == o.id)
            .where(st.next_tick_at.is_not(None), st.next_tick_at <= now)
            .order_by(st.next_tick_at, o.op_key)
            .limit(limit)
        )
        with self._read(session) as s:
            return [DueTick(*row) for row in s.execute(stmt).all()]

    def claim_tick(
        self,
        op_key: str,
        tick_at: dt.datetime,
        next_tick_at: dt.datetime | None,
        now: dt.datetime,
        session: Session | None = None,
    ) -> bool:
        """Fire the tick at `tick_at` once: True for the caller that fired it, False for any repeat.

        The schedule advances to `next_tick_at` and counts the run in the same transaction.
        """
        with self._tx(session) as s:
            op_id = self._op_id(s, op_key)
            fired = self.insert_ignore(
                s,
                ScheduleTick,
                {"operation_id": op_id, "tick_at": tick_at, "claimed_at": now},
                ["operation_id", "tick_at"],
            )
            if not fired:
                return False
            self.insert_ignore(
                s,
                ScheduleState,
                {"operation_id": op_id, "next_tick_at": None, "run_count": 0, "updated_at": now},
                ["operation_id"],
            )
            st = _t(ScheduleState)
            s.connection().execute(
                update(st)
                .where(st.c.operation_id == op_id)
                .values(
                    last_tick_at=tick_at,
                    next_tick_at=next_tick_at,
                    run_count=st.c.run_count + 1,
                    updated_at=now,
                )
            )
            return True

    def attach_tick_run(
        self, op_key: str, tick_at: dt.datetime, run: Run | str, session: Session | None = None
    ) -> None:
        """Remember which run a fired tick created."""
        with self._tx(session) as s:
            op_id = self._op_id(s, op_key)
            found = self._lock_run(s, run)
            t = _t(ScheduleTick)
            result: CursorResult[Any] = s.connection().execute(
                update(t).where(t.c.operation_id == op_id, t.c.tick_at == tick_at).values(run_id=found.id)
            )
            if result.rowcount != 1:
                raise NotFound(f"no fired tick of {op_key} at {tick_at.isoformat()}")

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

    def lock_schedule(self, op_key: str | OpKey, session: Session) -> ScheduleState | None:
        """The schedule row, locked for the rest of `session` (one decision per tick at a time)."""
        oid = self.op_id(op_key, session=session)
        if oid is None:
            return None
        stmt = select(ScheduleState).where(_t(ScheduleState).c.operation_id == oid).with_for_update()
        return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()

    def ensure_schedule(self, op_key: str | OpKey, now: dt.datetime, session: Session) -> ScheduleState:
        """The schedule row of a tracked operation, created empty if new, locked."""
        oid = self.op_id(op_key, session=session)
        if oid is None:
            raise NotFound(f"operation {op_key} is not tracked")
        self.insert_ignore(
            session, ScheduleState, {"operation_id": oid, "run_count": 0, "updated_at": now}, ["operation_id"]
        )
        state = self.lock_schedule(op_key, session)
        assert state is not None
        return state

    def delete_schedule(self, state: ScheduleState, session: Session) -> None:
        session.delete(state)
        session.flush()

    def record_tick(
        self,
        operation_id: int,
        at: dt.datetime,
        now: dt.datetime,
        *,
        outcome: str,
        reason: str | None = None,
        message: str | None = None,
        run_id: int | None = None,
        missed_until: dt.datetime | None = None,
        missed_count: int | None = None,
        session: Session,
    ) -> bool:
        """A skipped or missed tick, once: False when the instant was already handled."""
        return self.insert_ignore(
            session,
            ScheduleTick,
            {
                "operation_id": operation_id,
                "tick_at": at,
                "claimed_at": now,
                "run_id": run_id,
                "outcome": outcome,
                "reason": reason,
                "message": message,
                "missed_until": missed_until,
                "missed_count": missed_count,
            },
            ["operation_id", "tick_at"],
        )

    def set_tick_run(self, operation_id: int, at: dt.datetime, run_id: int, session: Session) -> None:
        t = _t(ScheduleTick)
        session.connection().execute(
            update(t).where(t.c.operation_id == operation_id, t.c.tick_at == at).values(run_id=run_id)
        )

    def past_runs(self, operation_id: int, session: Session) -> list[tuple[str, str]]:
        """(name, status) of the schedule's fired runs a tick decision looks at: the active ones
        and the latest, oldest first."""
        t, r = _t(ScheduleTick).c, _t(Run).c
        base = (
            select(r.name, r.status, t.tick_at)
            .join_from(_t(ScheduleTick), _t(Run), t.run_id == r.id)
            .where(t.operation_id == operation_id, t.outcome == "fired")
        )
        active = sorted(str(s) for s in RUN_STATUSES - DONE)
        rows = {row.name: row for row in session.execute(base.where(r.status.in_(active)).order_by(t.tick_at))}
        latest = session.execute(base.order_by(t.tick_at.desc()).limit(1)).first()
        if latest is not None:
            rows[latest.name] = latest
        return [(str(row.name), str(row.status)) for row in sorted(rows.values(), key=lambda x: x.tick_at)]

    def next_wakeup(self, session: Session | None = None) -> dt.datetime | None:
        st = _t(ScheduleState).c
        with self._read(session) as s:
            value = s.execute(select(func.min(st.next_tick_at))).scalar_one_or_none()
        if value is None:
            return None
        # min() loses the column type on SQLite: the value may come back as text or naive.
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        assert isinstance(value, dt.datetime)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    def wakeups(self, session: Session | None = None) -> list[tuple[str, dt.datetime | None]]:
        """Every registered schedule's next tick, by op key (to arm the timer at start-up)."""
        st, o = _t(ScheduleState).c, _t(Operation).c
        stmt = select(o.op_key, st.next_tick_at).join_from(_t(ScheduleState), _t(Operation), st.operation_id == o.id)
        with self._read(session) as s:
            return [(str(k), w) for k, w in s.execute(stmt).all()]

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
