"""What runs report about themselves while they run: metric values and outputs.

A value comes from the run's outputs file (read by the local backend as the run writes it) or
from `POST /api/runs/{name}/metrics|outputs`; either way it is recorded here, through the
applier. Metric values are kept in arrival order, each with a step (the run's own, or the next
one of that metric when it gave none), so trials of a sweep can be compared step by step; an
output keeps its latest value.

Growth is bounded: at most `MAX_POINTS_PER_RUN` metric values per run (`ReportLimit` beyond).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from reconciler.tracking.db import table
from reconciler.tracking.errors import NotFound, TrackingError
from reconciler.tracking.runs import RunsMixin
from reconciler.tracking.tables import Run, RunMetric, RunOutput

_t = table

MAX_POINTS_PER_RUN = 100_000


class ReportLimit(TrackingError):
    """The run reported more metric values than a run may keep."""


class Point(NamedTuple):
    """One value of a metric: `step` is the run's own step, or the metric's next one."""

    name: str
    step: int | None
    value: float


class SeriesPoint(NamedTuple):
    step: int
    value: float
    at: dt.datetime


class ReportsMixin(RunsMixin):
    def record_report(
        self,
        run_name: str,
        points: Sequence[Point],
        outputs: Mapping[str, Any],
        at: dt.datetime,
        session: Session | None = None,
    ) -> int:
        """Record metric values and outputs of `run_name` in one transaction; how many values.

        NotFound for an unknown run; ReportLimit when the run would keep more than
        MAX_POINTS_PER_RUN values (nothing of this report is recorded then)."""
        m = _t(RunMetric).c
        with self._tx(session) as s:
            run = self._lock_run(s, run_name)
            assert run.id is not None
            if points:
                have = int(s.execute(select(func.count()).where(m.run_id == run.id)).scalar_one())
                if have + len(points) > MAX_POINTS_PER_RUN:
                    raise ReportLimit(
                        f"run {run_name} has {have} metric values; a run keeps at most {MAX_POINTS_PER_RUN}"
                    )
                last: dict[str, int] = {}
                for name in {p.name for p in points if p.step is None}:
                    found = s.execute(select(func.max(m.step)).where(m.run_id == run.id, m.name == name)).scalar()
                    last[name] = -1 if found is None else int(found)
                rows = []
                for point in points:
                    step = point.step
                    if step is None:
                        step = last[point.name] = last[point.name] + 1
                    rows.append({"run_id": run.id, "name": point.name, "step": step, "value": point.value, "at": at})
                s.connection().execute(_t(RunMetric).insert(), rows)
            for name, value in outputs.items():
                o = _t(RunOutput).c
                done = s.connection().execute(
                    update(_t(RunOutput)).where(o.run_id == run.id, o.name == name).values(value=value, updated_at=at)
                )
                if not done.rowcount:
                    self.insert_ignore(s, RunOutput, {"run_id": run.id, "name": name, "value": value, "updated_at": at})
            return len(points)

    def metric_series(
        self, run_name: str, names: Iterable[str] | None = None, session: Session | None = None
    ) -> dict[str, list[SeriesPoint]]:
        """Every value each metric of the run took, in arrival order (all metrics, or `names`)."""
        m = _t(RunMetric).c
        with self._read(session) as s:
            run_id = self._run_id(s, run_name)
            stmt = select(m.name, m.step, m.value, m.at).where(m.run_id == run_id).order_by(m.name, m.id)
            if names is not None:
                stmt = stmt.where(m.name.in_(sorted(set(names))))
            series: dict[str, list[SeriesPoint]] = {}
            for name, step, value, at in s.execute(stmt):
                series.setdefault(str(name), []).append(SeriesPoint(int(step or 0), float(value), at))
            return series

    def metric_of_runs(
        self, run_names: Sequence[str], name: str, session: Session | None = None
    ) -> dict[str, list[tuple[int, float]]]:
        """One metric's (step, value) series of each of `run_names` (siblings of a sweep)."""
        m, r = _t(RunMetric).c, _t(Run).c
        found: dict[str, list[tuple[int, float]]] = {n: [] for n in run_names}
        wanted = sorted(set(run_names))
        with self._read(session) as s:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                stmt = (
                    select(r.name, m.step, m.value)
                    .join(_t(Run), r.id == m.run_id)
                    .where(r.name.in_(chunk), m.name == name)
                    .order_by(m.run_id, m.id)
                )
                for run, step, value in s.execute(stmt):
                    found[str(run)].append((int(step or 0), float(value)))
        return found

    def reported_outputs(self, run_name: str, session: Session | None = None) -> dict[str, Any]:
        """The latest value of each output the run reported; empty for none."""
        o = _t(RunOutput).c
        with self._read(session) as s:
            run_id = self._run_id(s, run_name)
            return {str(n): v for n, v in s.execute(select(o.name, o.value).where(o.run_id == run_id).order_by(o.name))}

    def latest_metrics(self, run_names: Sequence[str], session: Session | None = None) -> dict[str, dict[str, float]]:
        """The last value of every metric of each run (a sweep's trials table)."""
        m, r = _t(RunMetric).c, _t(Run).c
        found: dict[str, dict[str, float]] = {n: {} for n in run_names}
        wanted = sorted(set(run_names))
        with self._read(session) as s:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                newest = (
                    select(func.max(m.id))
                    .join(_t(Run), r.id == m.run_id)
                    .where(r.name.in_(chunk))
                    .group_by(m.run_id, m.name)
                )
                stmt = select(r.name, m.name, m.value).join(_t(Run), r.id == m.run_id).where(m.id.in_(newest))
                for run, name, value in s.execute(stmt):
                    found[str(run)][str(name)] = float(value)
        return found

    def _run_id(self, s: Session, run_name: str) -> int:
        found = s.execute(select(_t(Run).c.id).where(_t(Run).c.name == run_name)).scalar_one_or_none()
        if found is None:
            raise NotFound(f"run {run_name!r} is not tracked")
        return int(found)


__all__ = ["MAX_POINTS_PER_RUN", "Point", "ReportLimit", "ReportsMixin", "SeriesPoint"]
