"""When a schedule fires: tick arithmetic and the per-tick decision, as pure functions of `now`.

APScheduler keeps its coalescing and misfire arithmetic inside its loop next to
`datetime.now()`; here the whole decision (fire, skip, record as missed, stop the active run,
when to wake up next) is one function of plain data, so a test can drive a day, a DST change or
a week of downtime without sleeping, and the adapter only has to store what it returns.

Semantics, chosen once and documented in one place:

- Tick identity is the scheduled instant in UTC (`tick_cause_id`); with the op key it is unique in
  the tracking DB, so replaying a decision after a crash creates nothing new.
- Missed ticks (Kubernetes CronJob's `startingDeadlineSeconds`): of the ticks that fell due
  since the last one handled, only the most recent may fire, and only if it is younger than the
  starting deadline; every other one is recorded as missed (as one range, never dropped
  silently). There is never a burst of catch-up runs.
- Concurrency policy (as CronJob's `concurrencyPolicy`): `allow` fires regardless of active runs,
  `forbid` records the tick as skipped while a run of the schedule is active, `replace` stops the
  active runs and fires.
- `dependsOnPast`: a tick fires only if the previous run of the schedule succeeded; otherwise it
  is recorded as skipped with the previous run's status as the reason.
- `maxRuns` counts runs created; skipped and missed ticks do not use up the budget.
- `endAt` is inclusive; `startAt` is inclusive and anchors interval schedules (first tick at
  `startAt`, then every `frequency` of elapsed time, unaffected by DST).
- Cron runs in the wall-clock time of its zone (default UTC). On a spring-forward gap a wall time
  that does not exist that day fires once, at the instant the clock jumps (02:30 in Berlin on the
  last Sunday of March fires at 03:00 CEST), so a daily job never loses a day. On a fall-back
  overlap a job with a fixed hour fires once, at the first occurrence; a job whose hour field is
  `*` fires on both passes, because it follows elapsed time. An instant is never fired twice.
"""

from __future__ import annotations

import copy
import datetime as dt
import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

from reconciler.statuses import ACTIVE, Status

UTC = dt.UTC

# Kubernetes leaves startingDeadlineSeconds unset (unbounded, but it gives up after 100 missed
# schedules). A bounded default is safer for a daemon that may be down for days: a tick more than
# an hour late is more likely to surprise than to help. Repo config overrides it per op.
DEFAULT_STARTING_DEADLINE = dt.timedelta(hours=1)

# Upper bound of how far back a naive wall-clock search starts; larger than any DST shift.
_MAX_ZONE_SHIFT = dt.timedelta(hours=3)

# A cron schedule asked to count missed ticks over months stops counting here and says so.
MAX_COUNTED_MISSED = 100_000


class ConcurrencyPolicy(StrEnum):
    ALLOW = "allow"
    FORBID = "forbid"
    REPLACE = "replace"


class ScheduleError(ValueError):
    """A schedule that cannot be evaluated (unresolved reference, unknown time zone)."""


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule with every reference resolved and every time aware."""

    kind: str  # cron | interval | datetime
    tz: ZoneInfo
    cron: str | None = None
    frequency: dt.timedelta | None = None
    start_at: dt.datetime | None = None
    end_at: dt.datetime | None = None
    max_runs: int | None = None
    depends_on_past: bool = False

    @property
    def fixed_hour(self) -> bool:
        """True when the cron hour field is not `*`: such jobs follow wall-clock time."""
        return self.cron is not None and _parsed(self.cron).expanded[1] != ["*"]


@lru_cache(maxsize=16384)
def _parsed(expression: str) -> croniter:
    # Parsing dominates croniter's cost (hundreds of microseconds); 10,000 schedules share a few
    # hundred expressions, so each is parsed once and copied per walk.
    return croniter(expression, dt.datetime(2000, 1, 1))


@lru_cache(maxsize=65536)
def _next_wall_time(expression: str, after: dt.datetime) -> dt.datetime:
    """The first wall time after the naive `after` matching `expression`.

    Cached: schedules sharing an expression and a zone wake up at the same instants and ask the
    same question, and croniter's calendar walk is the dominant cost of a decision.
    """
    it = copy.copy(_parsed(expression))
    it.set_current(after, force=True)
    result: dt.datetime = it.get_next(dt.datetime)
    return result


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError) as e:  # ZoneInfoNotFoundError is a KeyError
        raise ScheduleError(f"unknown time zone {name!r}") from e


def _aware(value: object, tz: ZoneInfo, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise ScheduleError(f"{field} is not resolved to a date-time: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=tz)


def from_spec(schedule: object, tz: str | None = None) -> ScheduleSpec:
    """Build from a `reconciler.spec.schedules` model; references must have been resolved."""
    zi = zone(tz)
    kind = getattr(schedule, "kind", None)
    max_runs = getattr(schedule, "max_runs", None)
    if max_runs is not None and not isinstance(max_runs, int):
        raise ScheduleError(f"maxRuns is not resolved to an integer: {max_runs!r}")
    depends = getattr(schedule, "depends_on_past", None)
    if depends is not None and not isinstance(depends, bool):
        raise ScheduleError(f"dependsOnPast is not resolved to a boolean: {depends!r}")
    frequency = getattr(schedule, "frequency", None)
    if kind == "interval" and not isinstance(frequency, dt.timedelta):
        raise ScheduleError(f"frequency is not resolved to a duration: {frequency!r}")
    if kind not in ("cron", "interval", "datetime"):
        raise ScheduleError(f"unknown schedule kind {kind!r}")
    return ScheduleSpec(
        kind=kind,
        tz=zi,
        cron=getattr(schedule, "cron", None),
        frequency=frequency if kind == "interval" else None,
        start_at=_aware(getattr(schedule, "start_at", None), zi, "startAt"),
        end_at=_aware(getattr(schedule, "end_at", None), zi, "endAt"),
        max_runs=max_runs,
        depends_on_past=bool(depends),
    )


def anchored(spec: ScheduleSpec, registered_at: dt.datetime) -> ScheduleSpec:
    """An interval schedule without `startAt` counts from when it was registered."""
    if spec.kind == "interval" and spec.start_at is None:
        return replace(spec, start_at=registered_at)
    return spec


def tick_cause_id(at: dt.datetime) -> str:
    """The cause id of a tick: its instant in UTC, so it does not depend on the zone's offset."""
    return "schedule:" + at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tick_of_cause(cause_id: str) -> dt.datetime | None:
    """The tick instant a `tick_cause_id` names; None for anything else."""
    if not cause_id.startswith("schedule:"):
        return None
    try:
        return dt.datetime.strptime(cause_id[len("schedule:") :], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


# --- tick arithmetic ---------------------------------------------------------------------------


def _gap_end(naive: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The instant the clock jumps over a non-existent wall time `naive` (spring forward)."""
    # Instants before the jump show a wall time before `naive`, instants after it a later one;
    # zoneinfo exposes no transitions, so bisect between the two readings of `naive`.
    low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    while high - low > dt.timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).replace(tzinfo=None) < naive:
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)


def _instants(naive: dt.datetime, tz: ZoneInfo, both_folds: bool) -> list[dt.datetime]:
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        return [_gap_end(naive, tz)]
    return [first.astimezone(UTC), second.astimezone(UTC)] if both_folds else [first.astimezone(UTC)]


def _cron_after(spec: ScheduleSpec, after: dt.datetime) -> Iterator[dt.datetime]:
    assert spec.cron is not None
    # A wall time n maps to the instant n - offset(n), so every tick after `after` has a wall time
    # later than after + (the smallest offset in force around it): start the search there. Away
    # from a DST change that is just the local time of `after`, so no tick is walked twice.
    offsets = [
        (after + d).astimezone(spec.tz).utcoffset() for d in (-_MAX_ZONE_SHIFT, dt.timedelta(0), _MAX_ZONE_SHIFT)
    ]
    start = after.astimezone(UTC).replace(tzinfo=None) + min(o for o in offsets if o is not None)
    both = not spec.fixed_hour
    # Wall times in order give instants in order, except the second pass of a fall-back overlap,
    # which comes after later first-pass instants: hold those back and merge them in.
    second_pass: list[dt.datetime] = []
    last = after
    while True:
        naive = start = _next_wall_time(spec.cron, start)
        instants = _instants(naive, spec.tz, both)
        for extra in instants[1:]:
            heapq.heappush(second_pass, extra)
        while second_pass and second_pass[0] <= instants[0]:
            held = heapq.heappop(second_pass)
            if held > last:
                last = held
                yield held
        if instants[0] > last:
            last = instants[0]
            yield instants[0]


def _raw_after(spec: ScheduleSpec, after: dt.datetime) -> Iterator[dt.datetime]:
    """Ticks strictly after `after`, in order, ignoring `endAt` and `maxRuns`."""
    if spec.kind == "datetime":
        if spec.start_at is not None and spec.start_at > after:
            yield spec.start_at.astimezone(UTC)
        return
    if spec.kind == "interval":
        if spec.start_at is None:
            raise ScheduleError("an interval schedule without startAt needs anchored() first")
        assert spec.frequency is not None
        start = spec.start_at.astimezone(UTC)
        k = 0 if after < start else (after - start) // spec.frequency + 1
        while True:
            yield start + k * spec.frequency
            k += 1
    floor = after
    if spec.start_at is not None and spec.start_at > after:
        floor = spec.start_at - dt.timedelta(microseconds=1)
    yield from _cron_after(spec, floor)


def iter_ticks(spec: ScheduleSpec, after: dt.datetime) -> Iterator[dt.datetime]:
    """Ticks strictly after `after` up to `endAt` (inclusive), in UTC."""
    if after.tzinfo is None:
        raise ScheduleError("`after` must be an aware date-time")
    for tick in _raw_after(spec, after):
        if spec.end_at is not None and tick > spec.end_at:
            return
        yield tick


def next_ticks(spec: ScheduleSpec, after: dt.datetime, n: int) -> list[dt.datetime]:
    out: list[dt.datetime] = []
    for tick in iter_ticks(spec, after):
        if len(out) >= n:
            break
        out.append(tick)
    return out


def _interval_count(spec: ScheduleSpec, after: dt.datetime, until: dt.datetime) -> int:
    assert spec.frequency is not None and spec.start_at is not None
    start = spec.start_at.astimezone(UTC)
    end = until if spec.end_at is None else min(until, spec.end_at)
    if end < start:
        return 0
    last_k = (end - start) // spec.frequency
    first_k = 0 if after < start else (after - start) // spec.frequency + 1
    return max(0, last_k - first_k + 1)


# --- the decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Missed:
    """A range of ticks that were not run: `count` ticks from `first` to `last` inclusive."""

    first: dt.datetime
    last: dt.datetime
    count: int
    reason: str


@dataclass(frozen=True)
class Skipped:
    at: dt.datetime
    reason: str
    message: str


@dataclass(frozen=True)
class TickDecision:
    """What to record and do for one schedule at `now`.

    `handled_until` is the new watermark: every tick up to it is fired, skipped or missed, and
    the adapter stores it with the tick rows in one transaction.
    """

    fire: dt.datetime | None = None
    skipped: Skipped | None = None
    missed: Missed | None = None
    stop: tuple[str, ...] = ()
    handled_until: dt.datetime | None = None
    next_wakeup: dt.datetime | None = None
    finished: bool = False

    @property
    def cause_id(self) -> str | None:
        return tick_cause_id(self.fire) if self.fire else None


@dataclass(frozen=True)
class PastRun:
    """A run created by this schedule, as the tracking DB knows it."""

    name: str
    status: str


def reads_runs(spec: ScheduleSpec, concurrency: ConcurrencyPolicy) -> bool:
    """Whether `decide` looks at the schedule's `runs`: for `dependsOnPast` and the forbid and
    replace policies only, so an adapter need not read the runs of any other schedule."""
    return spec.depends_on_past or concurrency != ConcurrencyPolicy.ALLOW


def decide(
    spec: ScheduleSpec,
    *,
    now: dt.datetime,
    registered_at: dt.datetime,
    last_tick: dt.datetime | None,
    runs_so_far: int,
    runs: Sequence[PastRun] = (),
    concurrency: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW,
    starting_deadline: dt.timedelta = DEFAULT_STARTING_DEADLINE,
) -> TickDecision:
    """Decide what a schedule does at `now`.

    `last_tick` is the watermark stored by the previous decision (None the first time);
    `registered_at` is when the schedule was first registered, so a new cron or interval
    schedule never fires ticks from before it existed. A datetime schedule is the exception: its
    one tick is considered even if the commit that added it arrived late, so it still fires within
    the starting deadline. `runs` are this schedule's runs, oldest first.
    """
    if now.tzinfo is None or registered_at.tzinfo is None:
        raise ScheduleError("`now` and `registered_at` must be aware date-times")
    spec = anchored(spec, registered_at)
    if spec.max_runs is not None and runs_so_far >= spec.max_runs:
        return TickDecision(handled_until=last_tick, finished=True)
    if last_tick is not None:
        watermark = last_tick
    elif spec.kind == "datetime":
        watermark = dt.datetime.min.replace(tzinfo=UTC)
    else:
        watermark = registered_at

    # Walk the ticks that fell due since the watermark, keeping only what the decision needs:
    # the first, the last two and how many, so a week of downtime costs no memory.
    first: dt.datetime | None = None
    latest: dt.datetime | None = None
    before_latest: dt.datetime | None = None
    count = 0
    upcoming: dt.datetime | None = None
    ticks = iter_ticks(spec, watermark)
    if spec.kind == "interval":
        # Long downtimes of fast intervals are counted arithmetically, not enumerated.
        total = _interval_count(spec, watermark, now)
        if total > 0:
            assert spec.frequency is not None
            first = next(ticks)
            latest = first + (total - 1) * spec.frequency
            before_latest = latest - spec.frequency if total > 1 else None
            count = total
            ticks = iter_ticks(spec, latest)
    capped = False
    for tick in ticks:
        if tick > now or capped:
            upcoming = tick
            break
        first = first or tick
        before_latest, latest = latest, tick
        count += 1
        # Past the cap, stop here and wake up at once: the next call goes on from the watermark.
        capped = count >= MAX_COUNTED_MISSED

    missed: Missed | None = None
    fire: dt.datetime | None = None
    handled_until = last_tick
    if latest is not None:
        assert first is not None
        handled_until = latest
        deadline = int(starting_deadline.total_seconds())
        age = int((now - latest).total_seconds())
        if capped:
            reason = f"more than {MAX_COUNTED_MISSED} ticks were due at once; none of them runs"
            missed = Missed(first, latest, count, reason)
        elif now - latest > starting_deadline:
            reason = f"the most recent was {age}s overdue, past the starting deadline ({deadline}s)"
            missed = Missed(first, latest, count, reason)
        else:
            fire = latest
            if count > 1:
                assert before_latest is not None
                reason = "only the most recent due tick runs on catch-up, never a burst"
                missed = Missed(first, before_latest, count - 1, reason)

    skipped: Skipped | None = None
    stop: tuple[str, ...] = ()
    if fire is not None:
        active = tuple(r.name for r in runs if r.status in ACTIVE)
        previous = runs[-1] if runs else None
        if spec.depends_on_past and previous is not None and previous.status != Status.SUCCEEDED:
            skipped = Skipped(
                fire,
                "DependsOnPast",
                f"the previous run {previous.name} is {previous.status}, not succeeded (dependsOnPast)",
            )
        elif active and concurrency == ConcurrencyPolicy.FORBID:
            skipped = Skipped(
                fire, "ConcurrencyForbid", f"run {active[-1]} is still active (concurrency policy forbid)"
            )
        elif active and concurrency == ConcurrencyPolicy.REPLACE:
            stop = active
        if skipped is not None:
            fire = None

    fired = 1 if fire is not None else 0
    finished = spec.max_runs is not None and runs_so_far + fired >= spec.max_runs
    if not finished and upcoming is None:
        upcoming = next(iter_ticks(spec, max(now, handled_until or now)), None)
    if upcoming is None:
        finished = True
    return TickDecision(
        fire=fire,
        skipped=skipped,
        missed=missed,
        stop=stop,
        handled_until=handled_until,
        next_wakeup=None if finished else upcoming,
        finished=finished,
    )


__all__ = [
    "DEFAULT_STARTING_DEADLINE",
    "ConcurrencyPolicy",
    "Missed",
    "PastRun",
    "ScheduleError",
    "ScheduleSpec",
    "Skipped",
    "TickDecision",
    "anchored",
    "decide",
    "from_spec",
    "iter_ticks",
    "next_ticks",
    "reads_runs",
    "tick_cause_id",
    "tick_of_cause",
    "zone",
]
