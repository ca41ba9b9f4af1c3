"""The next fire times of a schedule as written, so a plan can show what a schedule change means.

A preview only: the tick arithmetic is `reconciler.scheduling.ticks` (the same the scheduler
fires by); the scheduler adapter owns the real firing (missed ticks, concurrency, history).
`maxRuns` caps the preview as if no run had fired yet, because the count so far lives in the
tracking DB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from reconciler.scheduling.ticks import ScheduleError, anchored, from_spec
from reconciler.scheduling.ticks import next_ticks as _next_ticks
from reconciler.spec.schedules import Schedule

_SCHEDULE: TypeAdapter[Any] = TypeAdapter(Schedule)


def next_ticks(schedule: Mapping[str, Any], now: dt.datetime, n: int = 3, tz: str = "UTC") -> tuple[dt.datetime, ...]:
    try:
        spec = from_spec(_SCHEDULE.validate_python(dict(schedule)), tz)
    except (ValidationError, ScheduleError, ValueError):
        return ()  # unresolved references or an invalid schedule: nothing to preview
    if spec.kind == "interval" and spec.start_at is None:
        spec = anchored(spec, now)  # a new interval schedule counts from when it is registered
    # A tick at exactly `now` is still to come (the scheduler fires ticks that are due, <= now).
    ticks = _next_ticks(spec, now - dt.timedelta(microseconds=1), n)
    if spec.max_runs is not None:
        ticks = ticks[: spec.max_runs]
    return tuple(t.astimezone(spec.tz) for t in ticks)
