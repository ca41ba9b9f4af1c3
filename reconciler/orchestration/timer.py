"""The wake-up timer: APScheduler 3 with its job store in the tracking DB, one job per schedule.

APScheduler only says *when* to look. Each job is a `DateTrigger` at a schedule's next tick; when it
fires, every `Timer` of this process calls its `on_due` (the daemon queues a "ticks" key), and
`Orchestrator.due` decides, from the tracking DB and `scheduling.ticks.decide`, what to fire,
skip or record as missed. The truth is not APScheduler's because its misfire and coalescing
handling is not exactly-once across restarts or replicas (two schedulers sharing a job store may
both run a job, or one may consume it for the other), while our (op, tick instant) uniqueness is.
So a job that runs twice costs one extra look, and a job that never runs is covered by the daemon
also waking at `Orchestrator.next_wakeup()`.

Jobs are stored pickled by reference to the module-level `_wake`, so they survive a restart: a
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

from reconciler.model import OpKey

log = logging.getLogger(__name__)

_TIMERS: weakref.WeakSet[Timer] = weakref.WeakSet()
_LOCK = threading.Lock()


def _wake() -> None:
    """The job function: a schedule is due somewhere, so every timer of this process looks."""
    with _LOCK:
        timers = list(_TIMERS)
    for timer in timers:
        timer.fire()


def job_id(op: OpKey | str) -> str:
    return f"schedule:{op}"


class Timer:
    def __init__(self, job_store: Any, on_due: Callable[[], None]) -> None:
        """`job_store`: APScheduler's job store in the tracking DB (`Store.job_store()`); None keeps
        the jobs in memory, as replicas sharing the repos do (a shared store would hand a job to
        whichever replica runs it first, not to the schedule's owner)."""
        self._on_due = on_due
        self._scheduler = BackgroundScheduler(
            jobstores={"default": job_store} if job_store is not None else {},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=dt.UTC,
        )

    def start(self) -> None:
        with _LOCK:
            _TIMERS.add(self)
        self._scheduler.start()

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
        try:
            self._on_due()
        except Exception:  # a failing callback must not kill APScheduler's thread
            log.exception("the timer's on_due callback failed")

    def reschedule(self, op: OpKey | str, when: dt.datetime | None) -> None:
        """Wake up at `when` for `op` (None: `op` has no next tick, forget it)."""
        if when is None:
            self.cancel(op)
            return
        self._scheduler.add_job(
            _wake,
            trigger=DateTrigger(run_date=when, timezone=dt.UTC),
            id=job_id(op),
            name=str(op),
            replace_existing=True,
        )

    def cancel(self, op: OpKey | str) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(job_id(op))

    def wakeups(self) -> dict[str, dt.datetime]:
        """The registered wake-ups by op key (for tests and the read API)."""
        return {str(job.name): job.next_run_time for job in self._scheduler.get_jobs() if job.next_run_time is not None}


__all__ = ["Timer", "job_id"]
