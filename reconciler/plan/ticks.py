"""The next fire times of a schedule as written, so a plan can show what a schedule change means.

A pure function of the schedule and `now`: the scheduler adapter owns the real firing (missed
ticks, concurrency, history); this only previews. `maxRuns` caps the preview as if no run had
fired yet, because the count so far lives in the tracking DB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import TypeAdapter, ValidationError

_DURATION = TypeAdapter(dt.timedelta)


def _when(value: Any, zone: dt.tzinfo) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str) and "{{" not in value:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _frequency(value: Any) -> dt.timedelta | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return dt.timedelta(seconds=value)
    try:
        return _DURATION.validate_python(value)
    except ValidationError:
        return None


def next_ticks(schedule: Mapping[str, Any], now: dt.datetime, n: int = 3, tz: str = "UTC") -> tuple[dt.datetime, ...]:
    """Up to `n` fire times at or after `now`, in the schedule's time zone (cron) or as written.

    A schedule that uses a template reference (`{{ params.x }}`) has no preview: empty.
    """
    zone = ZoneInfo(tz)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    kind = schedule.get("kind")
    start = _when(schedule.get("startAt"), zone)
    end = _when(schedule.get("endAt"), zone)
    max_runs = schedule.get("maxRuns")
    if isinstance(max_runs, int) and not isinstance(max_runs, bool):
        n = min(n, max_runs)
    ticks: list[dt.datetime] = []
    if kind == "datetime":
        if start is not None and start >= now:
            ticks.append(start)
    elif kind == "cron":
        expression = schedule.get("cron")
        if not isinstance(expression, str) or not croniter.is_valid(expression):
            return ()
        origin = max(now, start) if start is not None else now
        # croniter yields times strictly after its start; step back a second to include `origin`.
        it = croniter(expression, origin.astimezone(zone) - dt.timedelta(seconds=1))
        while len(ticks) < n:
            tick = it.get_next(dt.datetime)
            if end is not None and tick > end:
                break
            ticks.append(tick)
    elif kind == "interval":
        frequency = _frequency(schedule.get("frequency"))
        if frequency is None or frequency <= dt.timedelta(0):
            return ()
        anchor = start if start is not None else now
        steps = 0 if anchor >= now else -(-(now - anchor) // frequency)
        while len(ticks) < n:
            tick = anchor + steps * frequency
            if end is not None and tick > end:
                break
            ticks.append(tick)
            steps += 1
    return tuple(ticks[:n])
