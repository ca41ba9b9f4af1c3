"""10,000 registered schedules over a simulated day: dispatch lag of due ticks and process RSS.

The clock is simulated, the work is real: a dispatch loop keeps every schedule's next wake-up in
a heap, jumps the clock to the earliest one, and calls `ticks.decide` for every schedule due at
that instant, as the daemon will. A tick's lag is the real time from the start of its batch until
its decision is made, i.e. how late it would be dispatched if the loop woke exactly on time;
ticks sharing an instant (every hourly job at :00) wait for each other, which is the worst case.

    python -m bench.schedules_bench [--schedules 10000] [--hours 24] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import json
import random
import resource
import time
from dataclasses import dataclass

from reconciler.scheduling.ticks import ScheduleSpec, anchored, decide, zone

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]


@dataclass
class Registered:
    spec: ScheduleSpec
    registered_at: dt.datetime
    last_tick: dt.datetime | None = None
    runs: int = 0


def make_schedules(n: int, start: dt.datetime, rng: random.Random) -> list[Registered]:
    out: list[Registered] = []
    for _ in range(n):
        tz = zone(rng.choice(ZONES))
        roll = rng.random()
        if roll < 0.40:
            spec = ScheduleSpec(kind="cron", tz=tz, cron=f"{rng.randrange(60)} * * * *")
        elif roll < 0.60:
            spec = ScheduleSpec(kind="cron", tz=tz, cron="*/15 * * * *")
        elif roll < 0.80:
            spec = ScheduleSpec(kind="cron", tz=tz, cron=f"{rng.randrange(60)} {rng.randrange(24)} * * *")
        elif roll < 0.95:
            freq = dt.timedelta(minutes=rng.choice([5, 10, 30, 60]))
            spec = ScheduleSpec(
                kind="interval", tz=tz, frequency=freq, start_at=start + dt.timedelta(seconds=rng.randrange(3600))
            )
        else:
            spec = ScheduleSpec(kind="datetime", tz=tz, start_at=start + dt.timedelta(seconds=rng.randrange(86400)))
        out.append(Registered(anchored(spec, start), start))
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    start = dt.datetime(2024, 10, 26, 12, tzinfo=dt.UTC)  # spans the Berlin fall-back night
    end = start + dt.timedelta(hours=args.hours)
    schedules = make_schedules(args.schedules, start, random.Random(args.seed))
    heap: list[tuple[dt.datetime, int]] = []
    began = time.perf_counter()
    for i, s in enumerate(schedules):
        d = decide(s.spec, now=start, registered_at=s.registered_at, last_tick=None, runs_so_far=0)
        s.last_tick = d.handled_until
        if d.next_wakeup is not None:
            heap.append((d.next_wakeup, i))
    heapq.heapify(heap)
    register_s = time.perf_counter() - began

    lags: list[float] = []
    decisions = fired = missed = 0
    loop_began = time.perf_counter()
    while heap and heap[0][0] <= end:
        now = heap[0][0]
        batch_began = time.perf_counter()
        while heap and heap[0][0] <= now:
            _, i = heapq.heappop(heap)
            s = schedules[i]
            d = decide(s.spec, now=now, registered_at=s.registered_at, last_tick=s.last_tick, runs_so_far=s.runs)
            decisions += 1
            if d.fire is not None:
                fired += 1
                s.runs += 1
                lags.append(time.perf_counter() - batch_began)
            if d.missed is not None:
                missed += d.missed.count
            s.last_tick = d.handled_until
            if d.next_wakeup is not None:
                heapq.heappush(heap, (d.next_wakeup, i))
    loop_s = time.perf_counter() - loop_began

    print(f"schedules:        {args.schedules} over {args.hours:g} simulated hours (from {start.isoformat()})")
    print(f"registration:     {register_s:.2f} s")
    print(f"decisions:        {decisions} in {loop_s:.2f} s ({1e6 * loop_s / max(decisions, 1):.1f} us each)")
    print(f"ticks fired:      {fired}, missed: {missed} (expected 0)")
    print(
        f"dispatch lag:     p50 {1e3 * percentile(lags, 0.50):.1f} ms, p99 {1e3 * percentile(lags, 0.99):.1f} ms, "
        f"max {1e3 * max(lags, default=0):.1f} ms (target p99 < 1000 ms)"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RSS:              {rss_mb():.1f} MB now, {peak:.1f} MB peak (target < 200 MB)")
    print(
        json.dumps(
            {
                "schedules": args.schedules,
                "hours": args.hours,
                "decisions": decisions,
                "fired": fired,
                "missed": missed,
                "lag_p50_ms": round(1e3 * percentile(lags, 0.50), 2),
                "lag_p99_ms": round(1e3 * percentile(lags, 0.99), 2),
                "rss_mb": round(rss_mb(), 1),
                "peak_rss_mb": round(peak, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
