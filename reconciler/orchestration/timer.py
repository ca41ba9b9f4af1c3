"""The wake-up timer: APScheduler 3 with its job store in the tracking DB, one job for the daemon.

APScheduler only says *when* to look. Its one job is a `DateTrigger` at the earliest next tick of
the schedules this daemon fires; when it fires, every `Timer` of this process calls its `on_due`
(the daemon queues a `FireTicks` item), and `Orchestrator.due` decides, from the tracking DB and
`scheduling.ticks.decide`, what to fire, skip or record as missed, then asks for the next wake-up.
The truth is not APScheduler's because its misfire and coalescing handling is not exactly-once
across restarts or replicas (two schedulers sharing a job store may both run a job, or one may
consume it for the other), while our (op, tick instant) uniqueness is. So a job that runs twice
costs one extra look, and a job that never runs is covered by the daemon's own poll of the due
schedules (every 30 s).

One job rather than one per schedule: ten thousand schedules ticking every minute would
otherwise cost ten thousand job-store writes a minute (each job fired, removed and added again),
for wake-ups that all say "look at the database". `wake_by(when)` keeps the earliest time asked
for, and writes the job only when it moves earlier.

The job is stored pickled by reference to the module-level `_wake`, so it survives a restart: a
wake-up that fell due while the daemon was down runs as soon as a Timer starts
(`misfire_grace_time=None`: late by any amount is still run, once).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

log = logging.getLogger(__name__)

_TIMERS: weakref.WeakSet[Timer] = weakref.WeakSet()
_LOCK = threading.Lock()


def _wake() -> None:
    """The job function: a schedule is due somewhere, so every timer of this process looks."""
    with _LOCK:
        timers = list(_TIMERS)
    for timer in timers:
        timer.fire()


JOB_ID = "ticks"


class Timer:
    def __init__(self, job_store: Any, on_due: Callable[[], None]) -> None:
        """`job_store`: APScheduler's job store in the tracking DB (`Store.job_store()`); None keeps
        the job in memory, as replicas sharing the repos do (a shared store would hand a job to
        whichever replica runs it first, not to the schedule's owner)."""
        self._on_due = on_due
        self._scheduler = BackgroundScheduler(
            jobstores={"default": job_store} if job_store is not None else {},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=dt.UTC,
        )
        self._lock = threading.Lock()
        self._armed: dt.datetime | None = None  # the wake-up asked for and not yet fired

    def start(self) -> None:
        with _LOCK:
            _TIMERS.add(self)
        self._scheduler.start()
        # Jobs of releases that kept one per schedule (`schedule:<op>`): the one job replaces them.
        for job in self._scheduler.get_jobs():
            if job.id != JOB_ID:
                with contextlib.suppress(JobLookupError):
                    self._scheduler.remove_job(job.id)

    def stop(self) -> None:
        with _LOCK:
            _TIMERS.discard(self)
        if self._scheduler.running:
            # APScheduler 3 marks itself stopped before taking its job-store lock, so a job being
            # processed at that moment fails to remove itself and kills the scheduler's thread.
            # Pausing first, then waiting for the lock, lets the processing in flight finish.
            self._scheduler.pause()
            with self._scheduler._jobstores_lock:
                pass
            self._scheduler.shutdown(wait=True)

    def fire(self) -> None:
        with self._lock:
            self._armed = None  # the job ran (this timer's, or another's in this process)
        try:
            self._on_due()
        except Exception:  # a failing callback must not kill APScheduler's thread
            log.exception("the timer's on_due callback failed")

    def wake_by(self, when: dt.datetime | None) -> None:
        """Wake up at `when` at the latest (None: nothing to wake for); an earlier wake-up stays."""
        if when is None:
            return
        with self._lock:
            if self._armed is not None and self._armed <= when:
                return
            self._armed = when
            self._scheduler.add_job(
                _wake,
                trigger=DateTrigger(run_date=when, timezone=dt.UTC),
                id=JOB_ID,
                name=JOB_ID,
                replace_existing=True,
            )

    def wakeup(self) -> dt.datetime | None:
        """When the job will wake the daemon (None: no job), for tests and the read API."""
        job = self._scheduler.get_job(JOB_ID)
        if job is None:
            return None
        # A job added before the scheduler starts has no next run time yet: its trigger's date.
        when = getattr(job, "next_run_time", None) or job.trigger.run_date
        assert isinstance(when, dt.datetime)
        return when


__all__ = ["JOB_ID", "Timer"]
