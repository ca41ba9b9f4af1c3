"""Tick arithmetic and decisions under an injected clock: no sleeps, every instant explicit."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from zoneinfo import ZoneInfo

import pytest

from reconciler.scheduling.ticks import (
    ConcurrencyPolicy,
    PastRun,
    ScheduleError,
    ScheduleSpec,
    decide,
    from_spec,
    next_ticks,
    reads_runs,
    tick_cause_id,
)
from reconciler.spec.schedules import CronSchedule, DateTimeSchedule, IntervalSchedule

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
Z_UTC = ZoneInfo("UTC")


def at(*args: int, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)  # type: ignore[misc]


def cron(expr: str, tz: ZoneInfo = Z_UTC, **kw: object) -> ScheduleSpec:
    return ScheduleSpec(kind="cron", tz=tz, cron=expr, **kw)  # type: ignore[arg-type]


def local(ticks: list[dt.datetime], tz: ZoneInfo) -> list[str]:
    return [t.astimezone(tz).strftime("%m-%d %H:%M%z") for t in ticks]


# --- cron and DST -----------------------------------------------------------------------------


def test_cron_in_utc_by_default() -> None:
    spec = from_spec(CronSchedule(cron="0 */6 * * *"))
    assert next_ticks(spec, at(2024, 1, 1, 5), 3) == [at(2024, 1, 1, 6), at(2024, 1, 1, 12), at(2024, 1, 1, 18)]


def test_cron_follows_the_wall_clock_of_its_zone() -> None:
    spec = from_spec(CronSchedule(cron="0 9 * * *"), tz="Europe/Berlin")
    # 09:00 Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    assert next_ticks(spec, at(2024, 1, 10), 1) == [at(2024, 1, 10, 8)]
    assert next_ticks(spec, at(2024, 7, 10), 1) == [at(2024, 7, 10, 7)]


def test_spring_forward_gap_fires_once_when_the_clock_jumps_berlin() -> None:
    spec = cron("30 2 * * *", BERLIN)
    ticks = next_ticks(spec, at(2024, 3, 29), 4)
    # 02:30 does not exist on 2024-03-31 in Berlin: it fires at 03:00 CEST, the end of the gap.
    assert local(ticks, BERLIN) == [
        "03-29 02:30+0100",
        "03-30 02:30+0100",
        "03-31 03:00+0200",
        "04-01 02:30+0200",
    ]


def test_spring_forward_hourly_job_new_york_has_no_duplicate() -> None:
    spec = cron("0 * * * *", NEW_YORK)
    ticks = next_ticks(spec, at(2024, 3, 10, 0, tz=NEW_YORK), 3)
    # 02:00 does not exist; an hourly job follows elapsed time: 01:00 EST, then 03:00 EDT, once.
    assert local(ticks, NEW_YORK) == ["03-10 01:00-0500", "03-10 03:00-0400", "03-10 04:00-0400"]
    assert ticks[1] - ticks[0] == dt.timedelta(hours=1)


def test_spring_forward_every_quarter_hour_berlin_collapses_the_gap() -> None:
    spec = cron("*/15 * * * *", BERLIN)
    ticks = next_ticks(spec, at(2024, 3, 31, 1, 30, tz=BERLIN), 4)
    assert local(ticks, BERLIN) == ["03-31 01:45+0100", "03-31 03:00+0200", "03-31 03:15+0200", "03-31 03:30+0200"]


def test_fall_back_fixed_hour_job_fires_once_at_the_first_occurrence() -> None:
    spec = cron("30 2 * * *", BERLIN)
    ticks = next_ticks(spec, at(2024, 10, 26), 3)
    assert local(ticks, BERLIN) == ["10-26 02:30+0200", "10-27 02:30+0200", "10-28 02:30+0100"]
    spec_ny = cron("30 1 * * *", NEW_YORK)
    assert local(next_ticks(spec_ny, at(2024, 11, 2), 3), NEW_YORK) == [
        "11-02 01:30-0400",
        "11-03 01:30-0400",
        "11-04 01:30-0500",
    ]


def test_fall_back_wildcard_hour_job_fires_on_both_passes_in_order() -> None:
    spec = cron("*/30 * * * *", BERLIN)
    ticks = next_ticks(spec, at(2024, 10, 26, 23, 0), 6)
    assert local(ticks, BERLIN) == [
        "10-27 01:30+0200",
        "10-27 02:00+0200",
        "10-27 02:30+0200",
        "10-27 02:00+0100",
        "10-27 02:30+0100",
        "10-27 03:00+0100",
    ]
    assert all(b - a == dt.timedelta(minutes=30) for a, b in itertools.pairwise(ticks))


def test_resuming_inside_the_second_pass_of_an_overlap() -> None:
    spec = cron("*/30 * * * *", BERLIN)
    # 01:15 UTC is 02:15 CET, in the repeated hour; the next ticks are 02:30 CET and 03:00 CET.
    assert local(next_ticks(spec, at(2024, 10, 27, 1, 15), 2), BERLIN) == ["10-27 02:30+0100", "10-27 03:00+0100"]


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York"])
def test_a_whole_dst_day_driven_by_decisions_fires_every_quarter_hour(tz: str) -> None:
    zi = ZoneInfo(tz)
    spec = cron("*/15 * * * *", zi)
    day = dt.date(2024, 10, 27) if tz == "Europe/Berlin" else dt.date(2024, 11, 3)
    start = dt.datetime.combine(day, dt.time(0), zi).astimezone(UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zi).astimezone(UTC)
    fired: list[dt.datetime] = []
    last: dt.datetime | None = None
    now = start
    while now < end:
        d = decide(spec, now=now, registered_at=start - dt.timedelta(seconds=1), last_tick=last, runs_so_far=0)
        assert d.missed is None
        if d.fire:
            fired.append(d.fire)
        last = d.handled_until
        assert d.next_wakeup is not None
        now = d.next_wakeup
    # The fall-back day has 25 hours: 100 quarter hours, each fired once, in order.
    assert len(fired) == 100
    assert len(set(fired)) == 100
    assert fired == sorted(fired)


# --- interval and datetime --------------------------------------------------------------------


def test_interval_counts_elapsed_time_from_start_at() -> None:
    spec = from_spec(IntervalSchedule(frequency=dt.timedelta(minutes=90), start_at=at(2024, 3, 31, 0)), "Europe/Berlin")
    # Elapsed time, across the Berlin DST change at 01:00 UTC: no shift.
    assert next_ticks(spec, at(2024, 3, 30), 3) == [at(2024, 3, 31, 0), at(2024, 3, 31, 1, 30), at(2024, 3, 31, 3)]


def test_interval_without_start_at_counts_from_registration() -> None:
    spec = from_spec(IntervalSchedule(frequency=dt.timedelta(minutes=10)))
    reg = at(2024, 1, 1, 12, 3)
    d = decide(spec, now=reg, registered_at=reg, last_tick=None, runs_so_far=0)
    assert d.fire is None
    assert d.next_wakeup == at(2024, 1, 1, 12, 13)
    d = decide(spec, now=at(2024, 1, 1, 12, 13, 1), registered_at=reg, last_tick=None, runs_so_far=0)
    assert d.fire == at(2024, 1, 1, 12, 13)
    assert d.next_wakeup == at(2024, 1, 1, 12, 23)


def test_naive_start_at_is_read_in_the_schedule_zone() -> None:
    spec = from_spec(DateTimeSchedule(start_at=dt.datetime(2024, 6, 1, 9, 0)), "America/New_York")
    assert spec.start_at == at(2024, 6, 1, 13, 0)


def test_datetime_fires_once_then_finishes() -> None:
    spec = from_spec(DateTimeSchedule(start_at=at(2024, 6, 1, 9)))
    reg = at(2024, 5, 1)
    d = decide(spec, now=at(2024, 6, 1, 8), registered_at=reg, last_tick=None, runs_so_far=0)
    assert (d.fire, d.next_wakeup, d.finished) == (None, at(2024, 6, 1, 9), False)
    d = decide(spec, now=at(2024, 6, 1, 9, 0, 1), registered_at=reg, last_tick=None, runs_so_far=0)
    assert d.fire == at(2024, 6, 1, 9)
    assert d.finished and d.next_wakeup is None
    again = decide(spec, now=at(2024, 6, 1, 9, 5), registered_at=reg, last_tick=d.handled_until, runs_so_far=1)
    assert again.fire is None and again.finished


def test_datetime_pushed_late_fires_within_deadline_and_is_missed_after() -> None:
    spec = from_spec(DateTimeSchedule(start_at=at(2024, 6, 1, 9)))
    late = at(2024, 6, 1, 9, 20)
    d = decide(spec, now=late, registered_at=late, last_tick=None, runs_so_far=0)
    assert d.fire == at(2024, 6, 1, 9)
    too_late = at(2024, 6, 1, 11)
    d = decide(spec, now=too_late, registered_at=too_late, last_tick=None, runs_so_far=0)
    assert d.fire is None
    assert d.missed is not None and d.missed.count == 1 and d.missed.first == at(2024, 6, 1, 9)
    assert d.finished


def test_new_cron_schedule_never_fires_ticks_from_before_registration() -> None:
    spec = cron("0 * * * *")
    reg = at(2024, 1, 1, 10, 30)
    d = decide(spec, now=reg, registered_at=reg, last_tick=None, runs_so_far=0)
    assert d.fire is None and d.missed is None
    assert d.next_wakeup == at(2024, 1, 1, 11)


# --- window and budget ------------------------------------------------------------------------


def test_start_at_and_end_at_bound_cron_ticks_inclusively() -> None:
    spec = cron("0 * * * *", start_at=at(2024, 1, 1, 3), end_at=at(2024, 1, 1, 5))
    assert next_ticks(spec, at(2024, 1, 1), 10) == [at(2024, 1, 1, 3), at(2024, 1, 1, 4), at(2024, 1, 1, 5)]


def test_end_at_finishes_the_schedule() -> None:
    spec = cron("0 * * * *", end_at=at(2024, 1, 1, 5))
    d = decide(
        spec, now=at(2024, 1, 1, 5, 0, 2), registered_at=at(2024, 1, 1), last_tick=at(2024, 1, 1, 4), runs_so_far=4
    )
    assert d.fire == at(2024, 1, 1, 5)
    assert d.finished and d.next_wakeup is None


def test_max_runs_counts_runs_created() -> None:
    spec = cron("0 * * * *", max_runs=2)
    reg = at(2024, 1, 1)
    d1 = decide(spec, now=at(2024, 1, 1, 1), registered_at=reg, last_tick=None, runs_so_far=0)
    assert d1.fire and not d1.finished
    d2 = decide(spec, now=at(2024, 1, 1, 2), registered_at=reg, last_tick=d1.handled_until, runs_so_far=1)
    assert d2.fire == at(2024, 1, 1, 2) and d2.finished and d2.next_wakeup is None
    d3 = decide(spec, now=at(2024, 1, 1, 3), registered_at=reg, last_tick=d2.handled_until, runs_so_far=2)
    assert d3.fire is None and d3.finished


def test_skipped_ticks_do_not_use_up_max_runs() -> None:
    spec = cron("0 * * * *", max_runs=1, depends_on_past=True)
    d = decide(
        spec,
        now=at(2024, 1, 1, 1),
        registered_at=at(2024, 1, 1),
        last_tick=None,
        runs_so_far=0,
        runs=[PastRun("r0", "failed")],
    )
    assert d.skipped is not None and not d.finished


# --- dependsOnPast and concurrency ------------------------------------------------------------


def test_depends_on_past_skips_with_the_reason_unless_previous_succeeded() -> None:
    spec = cron("0 * * * *", depends_on_past=True)
    kw: dict[str, object] = {"now": at(2024, 1, 1, 2), "registered_at": at(2024, 1, 1), "last_tick": at(2024, 1, 1, 1)}
    first = decide(spec, runs_so_far=0, runs=[], **kw)  # type: ignore[arg-type]
    assert first.fire == at(2024, 1, 1, 2)
    ok = decide(spec, runs_so_far=1, runs=[PastRun("r1", "succeeded")], **kw)  # type: ignore[arg-type]
    assert ok.fire == at(2024, 1, 1, 2)
    bad = decide(spec, runs_so_far=1, runs=[PastRun("r0", "succeeded"), PastRun("r1", "failed")], **kw)  # type: ignore[arg-type]
    assert bad.fire is None
    assert bad.skipped is not None
    assert bad.skipped.at == at(2024, 1, 1, 2)
    assert bad.skipped.reason == "DependsOnPast"
    assert "r1 is failed" in bad.skipped.message
    assert bad.handled_until == at(2024, 1, 1, 2)  # recorded, not retried forever
    running = decide(spec, runs_so_far=1, runs=[PastRun("r1", "running")], **kw)  # type: ignore[arg-type]
    assert running.skipped is not None and "running" in running.skipped.message


@pytest.mark.parametrize(
    ("policy", "fires", "stops", "skipped"),
    [
        (ConcurrencyPolicy.ALLOW, True, (), False),
        (ConcurrencyPolicy.FORBID, False, (), True),
        (ConcurrencyPolicy.REPLACE, True, ("r1",), False),
    ],
)
def test_concurrency_policies_with_an_active_run(
    policy: ConcurrencyPolicy, fires: bool, stops: tuple[str, ...], skipped: bool
) -> None:
    spec = cron("*/5 * * * *")
    d = decide(
        spec,
        now=at(2024, 1, 1, 0, 10, 1),
        registered_at=at(2024, 1, 1),
        last_tick=at(2024, 1, 1, 0, 5),
        runs_so_far=2,
        runs=[PastRun("r0", "succeeded"), PastRun("r1", "running")],
        concurrency=policy,
    )
    assert (d.fire is not None) == fires
    assert d.stop == stops
    assert (d.skipped is not None) == skipped
    if skipped:
        assert d.skipped is not None and d.skipped.reason == "ConcurrencyForbid"


@pytest.mark.parametrize("policy", list(ConcurrencyPolicy))
def test_concurrency_policies_without_an_active_run_all_fire(policy: ConcurrencyPolicy) -> None:
    d = decide(
        cron("*/5 * * * *"),
        now=at(2024, 1, 1, 0, 10),
        registered_at=at(2024, 1, 1),
        last_tick=at(2024, 1, 1, 0, 5),
        runs_so_far=2,
        runs=[PastRun("r1", "succeeded")],
        concurrency=policy,
    )
    assert d.fire == at(2024, 1, 1, 0, 10) and d.stop == () and d.skipped is None


@pytest.mark.parametrize("depends_on_past", [False, True])
@pytest.mark.parametrize("policy", list(ConcurrencyPolicy))
def test_runs_are_read_only_where_the_decision_looks_at_them(policy: ConcurrencyPolicy, depends_on_past: bool) -> None:
    """The orchestration reads a schedule's runs only where `reads_runs` says so: elsewhere, no
    run, active or failed, changes the decision."""
    spec = cron("*/5 * * * *", depends_on_past=depends_on_past)
    kw: dict[str, object] = {
        "now": at(2024, 1, 1, 0, 10, 1),
        "registered_at": at(2024, 1, 1),
        "last_tick": at(2024, 1, 1, 0, 5),
        "runs_so_far": 2,
        "concurrency": policy,
    }
    histories = [[], [PastRun("r1", "running")], [PastRun("r0", "succeeded"), PastRun("r1", "failed")]]
    decisions = [decide(spec, runs=runs, **kw) for runs in histories]  # type: ignore[arg-type]
    assert reads_runs(spec, policy) == (depends_on_past or policy != ConcurrencyPolicy.ALLOW)
    if not reads_runs(spec, policy):
        assert decisions[0] == decisions[1] == decisions[2]
    else:
        assert len(set(decisions)) > 1  # what the runs are changes what happens


# --- downtime and catch-up ---------------------------------------------------------------------


def test_downtime_runs_one_catch_up_and_records_the_rest_as_missed() -> None:
    spec = cron("0 * * * *")
    d = decide(
        spec, now=at(2024, 1, 1, 5, 20), registered_at=at(2024, 1, 1), last_tick=at(2024, 1, 1, 0), runs_so_far=1
    )
    assert d.fire == at(2024, 1, 1, 5)
    assert d.missed is not None
    assert (d.missed.first, d.missed.last, d.missed.count) == (at(2024, 1, 1, 1), at(2024, 1, 1, 4), 4)
    assert d.handled_until == at(2024, 1, 1, 5)
    assert d.next_wakeup == at(2024, 1, 1, 6)
    # Never a burst: right after, nothing else is due.
    again = decide(
        spec, now=at(2024, 1, 1, 5, 21), registered_at=at(2024, 1, 1), last_tick=d.handled_until, runs_so_far=2
    )
    assert again.fire is None and again.missed is None


def test_ticks_older_than_the_deadline_are_all_missed() -> None:
    spec = cron("0 * * * *")
    d = decide(
        spec,
        now=at(2024, 1, 1, 5, 20),
        registered_at=at(2024, 1, 1),
        last_tick=at(2024, 1, 1, 0),
        runs_so_far=1,
        starting_deadline=dt.timedelta(minutes=10),
    )
    assert d.fire is None
    assert d.missed is not None and d.missed.count == 5 and d.missed.last == at(2024, 1, 1, 5)
    assert "starting deadline (600s)" in d.missed.reason
    assert d.handled_until == at(2024, 1, 1, 5)


def test_week_of_downtime_on_a_fast_interval_is_counted_not_walked() -> None:
    spec = ScheduleSpec(kind="interval", tz=ZoneInfo("UTC"), frequency=dt.timedelta(seconds=1), start_at=at(2024, 1, 1))
    began = time.perf_counter()
    d = decide(
        spec, now=at(2024, 1, 8, 0, 0, 0, 500000), registered_at=at(2024, 1, 1), last_tick=at(2024, 1, 1), runs_so_far=1
    )
    assert time.perf_counter() - began < 0.5
    assert d.fire == at(2024, 1, 8)
    assert d.missed is not None and d.missed.count == 7 * 86400 - 1


def test_decisions_are_replayable_after_a_crash() -> None:
    # The adapter stores (op, tick) and the watermark in one transaction. If it crashed before
    # that, the same inputs give the same tick and cause id, and the DB's unique key stops a twin.
    spec = cron("*/10 * * * *", BERLIN)
    kw: dict[str, object] = {
        "now": at(2024, 3, 31, 1, 0, 3),
        "registered_at": at(2024, 3, 30),
        "last_tick": at(2024, 3, 31, 0, 50),
        "runs_so_far": 3,
    }
    a = decide(spec, **kw)  # type: ignore[arg-type]
    b = decide(spec, **kw)  # type: ignore[arg-type]
    assert a == b
    assert a.cause_id == "schedule:2024-03-31T01:00:00Z"


def test_tick_cause_id_is_the_utc_instant() -> None:
    assert tick_cause_id(at(2024, 3, 31, 3, 0, tz=BERLIN)) == "schedule:2024-03-31T01:00:00Z"


# --- errors -----------------------------------------------------------------------------------


def test_unknown_time_zone_is_an_error() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone"):
        from_spec(CronSchedule(cron="* * * * *"), tz="Mars/Olympus")


def test_unresolved_reference_is_an_error() -> None:
    with pytest.raises(ScheduleError, match="maxRuns"):
        from_spec(CronSchedule(cron="* * * * *", max_runs="{{ params.n }}"))


def test_naive_now_is_an_error() -> None:
    with pytest.raises(ScheduleError):
        decide(
            cron("* * * * *"), now=dt.datetime(2024, 1, 1), registered_at=at(2024, 1, 1), last_tick=None, runs_so_far=0
        )


def test_missed_ticks_say_why_they_were_missed() -> None:
    """Ticks skipped on catch-up are not "older than the deadline": only the latest runs."""
    spec = cron("*/5 * * * *")
    reg = at(2024, 6, 1, 8)
    d = decide(spec, now=at(2024, 6, 1, 8, 16), registered_at=reg, last_tick=reg, runs_so_far=0)
    assert d.fire == at(2024, 6, 1, 8, 15)
    assert d.missed is not None and d.missed.count == 2
    assert d.missed.reason == "only the most recent due tick runs on catch-up, never a burst"
    daily = cron("0 8 * * *")
    start = at(2024, 6, 1, 7)
    late = decide(daily, now=at(2024, 6, 1, 10), registered_at=start, last_tick=start, runs_so_far=0)
    assert late.fire is None and late.missed is not None
    assert late.missed.reason == "the most recent was 7200s overdue, past the starting deadline (3600s)"
