"""Schedules: cron, interval and datetime. Checked more strictly than Polyaxon, which accepts any
cron string and any order of `startAt`/`endAt`: a schedule that can never fire is an error here."""

import datetime as dt
from typing import Annotated, Literal, Self, Union

from pydantic import Field, StrictInt, model_validator

from reconciler.spec.base import BoolOrRef, Ref, SpecModel

DateTimeOrRef = Union[dt.datetime, Ref]


def _check_window(start: object, end: object) -> None:
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        a = start if start.tzinfo else start.replace(tzinfo=dt.UTC)
        b = end if end.tzinfo else end.replace(tzinfo=dt.UTC)
        if b <= a:
            raise ValueError(f"endAt ({end.isoformat()}) must be after startAt ({start.isoformat()})")


class CronSchedule(SpecModel):
    kind: Literal["cron"] = "cron"
    cron: str
    start_at: DateTimeOrRef | None = None
    end_at: DateTimeOrRef | None = None
    max_runs: StrictInt | Ref | None = None
    depends_on_past: BoolOrRef | None = None

    @model_validator(mode="after")
    def _valid(self) -> Self:
        from croniter import croniter  # imported by the files that have a cron schedule only

        if "{{" not in self.cron and not croniter.is_valid(self.cron):
            raise ValueError(
                f"invalid cron expression {self.cron!r} (expected 5 fields: minute hour day month weekday)"
            )
        _check_window(self.start_at, self.end_at)
        if isinstance(self.max_runs, int) and self.max_runs < 1:
            raise ValueError("maxRuns must be at least 1")
        return self


class IntervalSchedule(SpecModel):
    kind: Literal["interval"] = "interval"
    start_at: DateTimeOrRef | None = None
    end_at: DateTimeOrRef | None = None
    max_runs: StrictInt | Ref | None = None
    frequency: dt.timedelta | Ref
    depends_on_past: BoolOrRef | None = None

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if isinstance(self.frequency, dt.timedelta) and self.frequency.total_seconds() <= 0:
            raise ValueError("interval frequency must be positive")
        _check_window(self.start_at, self.end_at)
        if isinstance(self.max_runs, int) and self.max_runs < 1:
            raise ValueError("maxRuns must be at least 1")
        return self


class DateTimeSchedule(SpecModel):
    kind: Literal["datetime"] = "datetime"
    start_at: DateTimeOrRef


Schedule = Annotated[IntervalSchedule | CronSchedule | DateTimeSchedule, Field(discriminator="kind")]
